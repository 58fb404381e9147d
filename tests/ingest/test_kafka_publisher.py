"""The DICOM listener's Kafka publisher over the in-memory broker (tests.support.fake): a
producer left unusable by one object is replaced, so it never costs the next object."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import MessageSizeTooLargeError

from ingest import kafka_publisher
from ingest.kafka_publisher import KafkaPublisher
from ingest.metrics import IngestMetrics
from ingest.publisher import PublishFailed, RecordTooLarge
from streams.client import record_size
from streams.settings import StreamSettings, Topics
from tests.support.fake import FakeBroker, FakeProducer

TOPIC = "t.rdsr"


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeBroker, list[FakeProducer]]:
    """Every producer the publisher creates, each an in-memory one over the same broker."""
    broker = FakeBroker()
    broker.create(TOPIC, 3)
    producers: list[FakeProducer] = []

    def create(**config: Any) -> FakeProducer:
        producer = FakeProducer(broker)
        producer.config = config  # type: ignore[attr-defined]
        producers.append(producer)
        return producer

    monkeypatch.setattr(kafka_publisher, "KafkaProducerClient", create)
    return broker, producers


def _publisher(
    max_bytes: int = 1 << 20,
    metrics: IngestMetrics | None = None,
    topic_limit: int | None = 1 << 20,
) -> KafkaPublisher:
    settings = StreamSettings(bootstrap_servers="127.0.0.1:9", topics=Topics(rdsr=TOPIC))
    return KafkaPublisher(
        settings,
        ack_timeout_s=1.0,
        max_bytes=max_bytes,
        metrics=metrics,
        topic_limit=lambda: topic_limit,  # what the broker says when asked again
    )


def test_a_fatal_producer_error_does_not_outlive_one_object(
    made: tuple[FakeBroker, list[FakeProducer]],
) -> None:
    broker, producers = made
    metrics = IngestMetrics()
    # The topic's limit was lowered under the listener to 200 bytes (asked again).
    publisher = _publisher(metrics=metrics, topic_limit=200)
    assert len(producers) == 1
    # What the broker's MESSAGE_TOO_LARGE does to kafka-python's idempotent producer.
    producers[0].fatal_on_flush = MessageSizeTooLargeError("injected: the broker refused it")
    with pytest.raises(PublishFailed) as first:
        publisher.publish(b"study-1", b"x" * 500, (("content-type", b"application/dicom"),))
    publisher.publish(b"study-2", b"second", ())
    assert [r.value for r in broker.records(TOPIC)] == [b"second"]
    assert len(producers) == 2 and producers[0].closed and not producers[1].closed
    # Above the new limit: refused as too large (0xC100), not Out of Resources; the new limit
    # applies before sending from now on.
    assert isinstance(first.value, RecordTooLarge) and first.value.limit == 200
    assert publisher.max_record_bytes == 200 and metrics.max_record_bytes._value.get() == 200
    with pytest.raises(RecordTooLarge):
        publisher.publish(b"study-3", b"x" * 500, ())
    assert len(producers[1]._pending) == 0
    # The new producer is made for the new limit (kafka-python's own check agrees with ours).
    assert [p.config["max_request_size"] for p in producers] == [1 << 20, 200]  # type: ignore[attr-defined]
    replaced = metrics.producer_replaced_total.labels(cause="MessageSizeTooLargeError")
    assert replaced._value.get() == 1 and publisher.replaced == 1
    publisher.close()
    assert producers[1].closed


def test_an_object_above_the_limit_is_refused_before_sending(
    made: tuple[FakeBroker, list[FakeProducer]],
) -> None:
    broker, producers = made
    headers = (("content-type", b"application/dicom"),)
    fits = b"x" * 1000
    limit = record_size(b"study", fits, headers)
    metrics = IngestMetrics()
    publisher = _publisher(max_bytes=limit, metrics=metrics)
    assert metrics.max_record_bytes._value.get() == limit
    with pytest.raises(RecordTooLarge) as refused:
        publisher.publish(b"study", fits + b"x", headers)
    assert (refused.value.size, refused.value.limit) == (limit + 1, limit)
    assert refused.value.comment == f"too large: {limit + 1} bytes, topic limit {limit} bytes"
    assert len(refused.value.comment) <= 64  # the Error Comment (LO)
    assert broker.records(TOPIC) == [] and producers[0]._pending == []
    publisher.publish(b"study", fits, headers)  # exactly the limit: sent
    assert [r.value for r in broker.records(TOPIC)] == [fits]
    assert len(producers) == 1


def test_a_small_record_failed_by_another_objects_refusal_is_retried_not_refused(
    made: tuple[FakeBroker, list[FakeProducer]],
) -> None:
    """A fatal producer fails every record in flight with the one MESSAGE_TOO_LARGE: a record
    within the topic's limit gets Out of Resources (its sender retries), not 0xC100."""
    broker, producers = made
    publisher = _publisher(topic_limit=1 << 20)
    producers[0].fatal_on_flush = MessageSizeTooLargeError("injected: another record's")
    with pytest.raises(PublishFailed) as caught:
        publisher.publish(b"study-1", b"small", ())
    assert not isinstance(caught.value, RecordTooLarge)
    assert "resend it" in caught.value.reason
    publisher.publish(b"study-1", b"small", ())  # the sender's retry, on the new producer
    assert [r.value for r in broker.records(TOPIC)] == [b"small"] and len(producers) == 2


def test_an_ordinary_delivery_failure_keeps_the_producer(
    made: tuple[FakeBroker, list[FakeProducer]],
) -> None:
    """A failure that leaves the producer usable (not fatal) does not replace it."""
    broker, producers = made
    publisher = _publisher()
    producers[0].fail_deliveries = 1
    with pytest.raises(PublishFailed):
        publisher.publish(b"study-1", b"first", ())
    publisher.publish(b"study-2", b"second", ())
    assert len(producers) == 1
    assert [r.value for r in broker.records(TOPIC)] == [b"second"]
