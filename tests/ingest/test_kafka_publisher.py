"""The DICOM listener's Kafka publisher over the in-memory broker (tests.support.fake): a
producer left unusable by one object is replaced, so it never costs the next object."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import MessageSizeTooLargeError

from ingest import kafka_publisher
from ingest.kafka_publisher import KafkaPublisher
from ingest.publisher import PublishFailed
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
        producers.append(producer)
        return producer

    monkeypatch.setattr(kafka_publisher, "KafkaProducerClient", create)
    return broker, producers


def _publisher() -> KafkaPublisher:
    settings = StreamSettings(bootstrap_servers="127.0.0.1:9", topics=Topics(rdsr=TOPIC))
    return KafkaPublisher(settings, ack_timeout_s=1.0, max_bytes=1 << 20)


def test_a_fatal_producer_error_does_not_outlive_one_object(
    made: tuple[FakeBroker, list[FakeProducer]],
) -> None:
    broker, producers = made
    publisher = _publisher()
    assert len(producers) == 1
    # What the broker's MESSAGE_TOO_LARGE does to kafka-python's idempotent producer.
    producers[0].fatal = MessageSizeTooLargeError("injected: the broker refused the batch")
    with pytest.raises(PublishFailed):
        publisher.publish(b"study-1", b"first", (("content-type", b"application/dicom"),))
    publisher.publish(b"study-2", b"second", (("content-type", b"application/dicom"),))
    assert [r.value for r in broker.records(TOPIC)] == [b"second"]
    assert len(producers) == 2 and producers[0].closed and not producers[1].closed
    publisher.close()
    assert producers[1].closed


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
