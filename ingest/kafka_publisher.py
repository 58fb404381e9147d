"""The Kafka :class:`~ingest.publisher.Publisher`: one record per object, acknowledged.

LEAD, ON MERGE: this is a thin stand-in for s1's ``streams/client.py`` (the one module meant
to import ``kafka``), which was not on main when this was written. Swap ``self._producer`` for
``streams.client.KafkaProducerClient(**settings.kafka_common(), acks="all", ...)``
and replace ``future.get(timeout=...)`` with ``client.flush(None, timeout_s)`` followed by
``delivery.failed()`` / ``delivery.exception``; nothing else in ``ingest/`` touches ``kafka``.

Durability: ``acks="all"`` (every in-sync replica has the record) and idempotent retries, so a
retry after a lost acknowledgement does not write the record twice within one producer session.
A resend by the scanner after a failure status may still duplicate a record; the pipeline
treats a report seen twice as one (tests/ingest/test_duplicates.py).
"""

from __future__ import annotations

import threading
from typing import Any

from ingest.publisher import Headers, PublishFailed
from streams.settings import StreamSettings


class KafkaPublisher:
    """Publishes to ``settings.topics.rdsr``; ``publish`` blocks until acknowledged or failed."""

    def __init__(self, settings: StreamSettings, *, ack_timeout_s: float, max_bytes: int) -> None:
        from kafka import KafkaProducer

        self.topic = settings.topics.rdsr
        self.ack_timeout_s = ack_timeout_s
        self._lock = threading.Lock()
        timeout_ms = int(ack_timeout_s * 1000)
        self._producer: Any = KafkaProducer(
            **settings.kafka_common(),
            acks="all",
            enable_idempotence=True,
            # Each C-STORE waits for its acknowledgement: lingering would only add latency.
            linger_ms=0,
            # A send waiting for metadata (broker down) gives up within the C-STORE's deadline.
            max_block_ms=timeout_ms,
            request_timeout_ms=max(1000, timeout_ms),
            delivery_timeout_ms=max(1000, timeout_ms) + 1000,
            max_request_size=max_bytes,
            reconnect_backoff_max_ms=1000,
        )

    @property
    def destination(self) -> str:
        return self.topic

    def publish(self, key: bytes, value: bytes, headers: Headers) -> None:
        from kafka.errors import KafkaError

        try:
            future = self._producer.send(self.topic, key=key, value=value, headers=list(headers))
            future.get(timeout=self.ack_timeout_s)
        except KafkaError as exc:
            raise PublishFailed(
                f"Kafka did not acknowledge the record on {self.topic} within "
                f"{self.ack_timeout_s:g} s ({type(exc).__name__}: {exc})"
            ) from exc

    def close(self) -> None:
        with self._lock:
            self._producer.close(timeout=5)
