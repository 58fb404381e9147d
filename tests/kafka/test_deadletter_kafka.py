"""Issue 10, defect 1: a dead letter must always fit, one oversized bad message must not stop
the service.

An undecodable event of ~1,048,200 bytes fits the input topic on default limits, but its DLQ
copy (the same bytes plus the reason headers) did not fit the producer's ``max_request_size``:
``send`` raised ``MessageSizeTooLargeError`` and ``lowdose run`` exited on every restart. The
same with 20 MB of random bytes on an input topic that allows them. The DLQ copy is now cut to
fit, with headers giving the original size and SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import pytest

from simulator import simulate_feed
from streams import deadletter
from streams.publish import messages_from_studies, send
from streams.service import Service
from tests.support.kafka import (
    ServiceThread,
    client_producer,
    drain,
    header,
    producer,
    settings_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

BIG = 32 * 1024 * 1024


def _events(n: int, seed: int) -> tuple[list[Any], set[tuple[str, int]]]:
    studies = simulate_feed(n, seed=seed)
    events = [m for m in messages_from_studies(studies) if m.kind == "protocol"]
    ids = {
        (s.protocol_event.event_id, a.index) for s in studies for a in s.protocol_event.acquisitions
    }
    return events, ids


def _run_with_poison(
    bootstrap: str, settings: Any, fake_pipeline: Any, topic: str, poison: bytes, **config: Any
) -> tuple[Service, list[Any], list[Any], set[tuple[str, int]]]:
    events, expected = _events(6, seed=11)
    service = Service(settings, pipeline_factory=fake_pipeline)
    with ServiceThread(service) as running:
        p = producer(bootstrap, **config)
        c = client_producer(bootstrap, **config)
        send(c, settings.topics, events[:3])
        p.send(topic, key=b"poison", value=poison).get(timeout=60)
        send(c, settings.topics, events[3:])
        p.close()
        c.close(timeout_s=30)
        assessments = drain(
            bootstrap, settings.topics.assessments, until=lambda rs: len(rs) >= len(expected)
        )
        dlq = drain(bootstrap, settings.topics.dlq, until=lambda rs: len(rs) >= 1)
        assert running.thread.is_alive(), f"the service stopped: {running.error!r}"
    return service, assessments, dlq, expected


def _check(dlq: list[Any], poison: bytes, topic: str, limit: int) -> None:
    assert len(dlq) == 1
    record = dlq[0]
    assert header(record, deadletter.HEADER_SOURCE_TOPIC) == topic
    assert header(record, deadletter.HEADER_TRUNCATED) == "true"
    assert header(record, deadletter.HEADER_ORIGINAL_SIZE) == str(len(poison))
    assert header(record, deadletter.HEADER_ORIGINAL_SHA256) == hashlib.sha256(poison).hexdigest()
    assert header(record, deadletter.HEADER_ERROR_MESSAGE)
    kept = bytes(record.value)
    assert 0 < len(kept) < len(poison) and poison.startswith(kept)
    assert len(kept) + sum(len(k) + len(v) for k, v in record.headers) < limit


def test_an_undecodable_event_of_a_megabyte_is_dead_lettered_cut_to_fit(
    kafka_bootstrap: str, fake_pipeline: Any
) -> None:
    settings = settings_for(kafka_bootstrap, partitions=2)
    # Valid JSON start, never closed: fits the input topic and the producer (1,048,576) alone,
    # not with the DLQ headers.
    poison = b'{"schema": "lowdose.protocol/1", "event_id": "' + b"x" * (1_048_200 - 46)
    assert len(poison) == 1_048_200
    service, assessments, dlq, expected = _run_with_poison(
        kafka_bootstrap, settings, fake_pipeline, settings.topics.protocol, poison
    )
    got = {
        (json.loads(r.value)["input_id"], json.loads(r.value)["acquisition_index"])
        for r in assessments
    }
    assert got == expected
    _check(dlq, poison, settings.topics.protocol, 1_048_576)
    assert service.stats.bad == 1


def test_twenty_megabytes_of_random_bytes_on_a_topic_that_allows_them(
    kafka_bootstrap: str, fake_pipeline: Any
) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    settings = settings_for(kafka_bootstrap, partitions=2)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(
                    settings.topics.rdsr,
                    num_partitions=2,
                    replication_factor=1,
                    topic_configs={"max.message.bytes": str(BIG)},
                )
            ]
        )
    finally:
        admin.close()
    poison = os.urandom(20 * 1024 * 1024)
    service, assessments, dlq, expected = _run_with_poison(
        kafka_bootstrap,
        settings,
        fake_pipeline,
        settings.topics.rdsr,
        poison,
        max_request_size=BIG,
    )
    assert len(assessments) >= len(expected)
    _check(dlq, poison, settings.topics.rdsr, 1_048_576)
    assert service.stats.bad == 1


def test_the_dlq_topics_own_smaller_limit_is_respected(
    kafka_bootstrap: str, fake_pipeline: Any
) -> None:
    """A DLQ topic with ``max.message.bytes`` = 200,000: the letter is cut to that, not to the
    producer's 1 MiB (the broker would refuse it and the dead letter would be lost)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    settings = settings_for(kafka_bootstrap, partitions=2)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics(
            [NewTopic(settings.topics.dlq, 2, 1, topic_configs={"max.message.bytes": "200000"})]
        )
    finally:
        admin.close()
    poison = os.urandom(500_000)
    service, _assessments, dlq, _expected = _run_with_poison(
        kafka_bootstrap, settings, fake_pipeline, settings.topics.rdsr, poison
    )
    _check(dlq, poison, settings.topics.rdsr, 200_000)
    assert service.stats.bad == 1
