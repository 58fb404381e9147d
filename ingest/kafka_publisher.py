"""The Kafka :class:`~ingest.publisher.Publisher`: one record per object, acknowledged.

Built on :mod:`streams.client` (the one module that imports the Kafka client). Durability:
``acks="all"`` (every in-sync replica has the record) and idempotent retries, so a retry after a
lost acknowledgement does not write the record twice within one producer session. A resend by
the scanner after a failure status may still duplicate a record; the pipeline treats a report
seen twice as one (tests/ingest/test_duplicates.py).

Size (issue 22): the DICOM topic takes records up to its ``max.message.bytes``, read from the
broker at start-up (:func:`record_limit`); the producer's ``max_request_size`` is that limit,
and a larger object is refused before it is sent (:class:`~ingest.publisher.RecordTooLarge`),
so the broker never sees it. One producer error must not cost the next object: kafka-python's
idempotent producer goes *fatal* after a non-retriable produce error (the broker's
MESSAGE_TOO_LARGE when the topic's limit was lowered under a running listener is one) and fails
every later record; such a producer is replaced by a new one at once
(:meth:`KafkaPublisher.publish`), logged and counted with its cause, and after a
MESSAGE_TOO_LARGE the topic's limit is read again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ingest.metrics import IngestMetrics
from ingest.publisher import Headers, PublishFailed, RecordTooLarge
from streams.client import KafkaProducerClient, record_size, too_large
from streams.errors import BrokerError
from streams.inputs import RDSR
from streams.settings import StreamSettings

log = logging.getLogger("lowdose.ingest.kafka")


def record_limit(settings: StreamSettings) -> int:
    """The largest record the DICOM topic takes: its ``max.message.bytes`` as the broker reports
    it (call after :func:`streams.topics.ensure_topics`), else ``rdsr_max_message_bytes``, the
    value lowdose creates it with. A topic made elsewhere with a smaller limit is named in the
    log with the command that raises it."""
    from streams.topics import max_message_bytes

    topic = RDSR.topic(settings.topics)
    configured = settings.rdsr_max_message_bytes
    actual = max_message_bytes(settings, topic)
    if actual is None:
        log.warning(
            "cannot read max.message.bytes of %s (DescribeConfigs refused or failed); assuming "
            "%d bytes (rdsr_max_message_bytes), what lowdose creates it with",
            topic,
            configured,
        )
        return configured
    if actual < configured:
        log.warning(
            "%s takes records of at most %d bytes (its max.message.bytes), less than "
            "rdsr_max_message_bytes (%d): larger objects are refused (0xC100); to carry them: "
            "kafka-configs.sh --alter --entity-type topics --entity-name %s --add-config "
            "max.message.bytes=%d",
            topic,
            actual,
            configured,
            topic,
            configured,
        )
    return actual


class KafkaPublisher:
    """Publishes to the DICOM input topic (:data:`streams.inputs.RDSR`, ``settings.topics.rdsr``);
    ``publish`` blocks until acknowledged or failed.

    ``max_bytes`` is the largest record sent (the topic's limit, :func:`record_limit`); larger
    objects are refused before sending. ``topic_limit`` reads the topic's limit again when the
    broker refuses a record as too large (default: from the broker, None when unreadable).
    """

    def __init__(
        self,
        settings: StreamSettings,
        *,
        ack_timeout_s: float,
        max_bytes: int,
        metrics: IngestMetrics | None = None,
        topic_limit: Callable[[], int | None] | None = None,
    ) -> None:
        self.topic = RDSR.topic(settings.topics)
        self._topic_limit = topic_limit or self._read_topic_limit
        self.ack_timeout_s = ack_timeout_s
        self.max_record_bytes = max_bytes
        self.metrics = metrics
        self.replaced = 0  # producers replaced after a fatal error
        self._settings = settings
        self._lock = threading.Lock()
        self._generation = 0
        self._producer = self._create()
        if metrics is not None:
            metrics.max_record_bytes.set(max_bytes)

    def _read_topic_limit(self) -> int | None:
        from streams.topics import max_message_bytes

        try:
            return max_message_bytes(self._settings, self.topic)
        except Exception:  # broker gone again, probe refused: the limit stays unknown
            log.debug("reading max.message.bytes of %s failed", self.topic, exc_info=True)
            return None

    def _create(self) -> KafkaProducerClient:
        timeout_ms = int(self.ack_timeout_s * 1000)
        return KafkaProducerClient(
            # A send waiting for metadata (broker down) gives up within the C-STORE's deadline.
            give_up_s=self.ack_timeout_s,
            **self._settings.kafka_common(),
            acks="all",
            enable_idempotence=True,
            # Each C-STORE waits for its acknowledgement: lingering would only add latency.
            linger_ms=0,
            request_timeout_ms=max(1000, timeout_ms),
            delivery_timeout_ms=max(1000, timeout_ms) + 1000,
            # What the topic takes: a larger record is refused here, never sent to the broker.
            max_request_size=self.max_record_bytes,
            reconnect_backoff_max_ms=1000,
        )

    @property
    def destination(self) -> str:
        return self.topic

    def publish(self, key: bytes, value: bytes, headers: Headers) -> None:
        size = record_size(key, value, headers)
        if size > self.max_record_bytes:
            raise RecordTooLarge(size, self.max_record_bytes, self.topic)
        producer, generation = self._current()
        try:
            delivery = producer.send(self.topic, key=key, value=value, headers=headers)
            # Waits for every record sent so far (other associations' too): at most the deadline.
            producer.flush(None, self.ack_timeout_s)
        except BrokerError as exc:
            self._replace_if_fatal(producer, generation)
            raise PublishFailed(
                f"Kafka did not acknowledge the record on {self.topic} within "
                f"{self.ack_timeout_s:g} s ({exc})"
            ) from exc
        if not delivery.is_done or delivery.failed():
            error = delivery.exception
            # Before the producer is replaced: the new one is made for the topic's new limit.
            limit = self._lowered_limit() if too_large(error) else None
            self._replace_if_fatal(producer, generation)
            if limit is not None and size > limit:
                raise RecordTooLarge(size, limit, self.topic, by_broker=True) from error
            if too_large(error):
                raise PublishFailed(
                    f"Kafka refused the record on {self.topic} ({error}) although it is within "
                    f"the topic's limit ({limit if limit is not None else 'unreadable'}): "
                    "another object's refusal failed every record in flight; resend it"
                ) from error
            raise PublishFailed(
                f"Kafka refused the record on {self.topic}: {error or 'not delivered'}"
            ) from error

    def _lowered_limit(self) -> int | None:
        """The broker answered MESSAGE_TOO_LARGE for a record within the limit read at start-up:
        the topic's limit was lowered. Read it again (None when unreadable) and refuse larger
        objects before sending from now on.

        A fatal producer fails every record in flight with that one error, a small one from
        another association too: only a record above the new limit is refused as too large; the
        others (and every one while the limit is unreadable) get Out of Resources, so that their
        senders retry instead of giving them up.
        """
        limit = self._topic_limit()
        if limit is None:
            return None
        if limit < self.max_record_bytes:
            log.warning(
                "max.message.bytes of %s is now %d bytes (was %d): larger objects "
                "are refused before sending",
                self.topic,
                limit,
                self.max_record_bytes,
            )
            self.max_record_bytes = limit
            if self.metrics is not None:
                self.metrics.max_record_bytes.set(limit)
        return limit

    def _current(self) -> tuple[KafkaProducerClient, int]:
        """The producer to send with (replacing it first if a fatal error left it unusable and
        replacing it then failed) and its generation."""
        with self._lock:
            producer, generation = self._producer, self._generation
        if self._replace_if_fatal(producer, generation):
            with self._lock:
                producer, generation = self._producer, self._generation
        return producer, generation

    def _replace_if_fatal(self, producer: KafkaProducerClient, generation: int) -> bool:
        """Replace ``producer`` when it is in kafka-python's fatal state; True when replaced
        (here or by another association's thread)."""
        error = producer.fatal_error()
        if error is None:
            return False
        with self._lock:
            if self._generation != generation:  # another thread replaced it already
                return True
            try:
                self._producer = self._create()
            except BrokerError as exc:
                log.error(
                    "Kafka producer unusable after %s (%s) and a new one could not be created "
                    "(%s); the next C-STORE tries again",
                    type(error).__name__,
                    error,
                    exc,
                )
                return False
            self._generation += 1
            self.replaced += 1
        log.error(
            "Kafka producer for %s unusable after %s (%s): replaced by a new one; records in "
            "flight on it were refused, the next C-STORE uses the new producer",
            self.topic,
            type(error).__name__,
            error,
        )
        if self.metrics is not None:
            self.metrics.producer_replaced_total.labels(cause=type(error).__name__).inc()
        # Nothing it still holds can be delivered (a fatal producer aborts every batch).
        producer.close(timeout_s=0)
        return True

    def close(self) -> None:
        with self._lock:
            self._producer.close(timeout_s=5)
