"""The Kafka :class:`~ingest.publisher.Publisher`: one record per object, acknowledged.

Built on :mod:`streams.client` (the one module that imports the Kafka client). Durability:
``acks="all"`` (every in-sync replica has the record) and idempotent retries, so a retry after a
lost acknowledgement does not write the record twice within one producer session. A resend by
the scanner after a failure status may still duplicate a record; the pipeline treats a report
seen twice as one (tests/ingest/test_duplicates.py).
"""

from __future__ import annotations

import threading

from ingest.publisher import Headers, PublishFailed
from streams.client import KafkaProducerClient
from streams.errors import BrokerError
from streams.inputs import RDSR
from streams.settings import StreamSettings


class KafkaPublisher:
    """Publishes to the DICOM input topic (:data:`streams.inputs.RDSR`, ``settings.topics.rdsr``);
    ``publish`` blocks until acknowledged or failed."""

    def __init__(self, settings: StreamSettings, *, ack_timeout_s: float, max_bytes: int) -> None:
        self.topic = RDSR.topic(settings.topics)
        self.ack_timeout_s = ack_timeout_s
        self._lock = threading.Lock()
        timeout_ms = int(ack_timeout_s * 1000)
        self._producer = KafkaProducerClient(
            # A send waiting for metadata (broker down) gives up within the C-STORE's deadline.
            give_up_s=ack_timeout_s,
            **settings.kafka_common(),
            acks="all",
            enable_idempotence=True,
            # Each C-STORE waits for its acknowledgement: lingering would only add latency.
            linger_ms=0,
            request_timeout_ms=max(1000, timeout_ms),
            delivery_timeout_ms=max(1000, timeout_ms) + 1000,
            max_request_size=max_bytes,
            reconnect_backoff_max_ms=1000,
        )

    @property
    def destination(self) -> str:
        return self.topic

    def publish(self, key: bytes, value: bytes, headers: Headers) -> None:
        try:
            delivery = self._producer.send(self.topic, key=key, value=value, headers=headers)
            # Waits for every record sent so far (other associations' too): at most the deadline.
            self._producer.flush(None, self.ack_timeout_s)
        except BrokerError as exc:
            raise PublishFailed(
                f"Kafka did not acknowledge the record on {self.topic} within "
                f"{self.ack_timeout_s:g} s ({exc})"
            ) from exc
        if not delivery.is_done or delivery.failed():
            raise PublishFailed(
                f"Kafka refused the record on {self.topic}: {delivery.exception or 'not delivered'}"
            )

    def close(self) -> None:
        with self._lock:
            self._producer.close(timeout_s=5)
