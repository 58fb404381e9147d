"""The consumer service against a real broker, with a stand-in pipeline (mechanics only).

Bad input goes to the DLQ with its reason while the good messages around it are assessed; study
state written to the changelog is rebuilt by a second service that takes the partitions over.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from simulator import simulate_feed
from streams import deadletter
from streams.publish import messages_from_studies, send
from streams.service import Service
from streams.topics import ensure_topics
from tests.paths import SHARED
from tests.support.kafka import (
    ServiceThread,
    client_producer,
    drain,
    header,
    producer,
    settings_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

RDSR = SHARED / "data" / "rdsr" / "CT-RDSR-Siemens-Multi-1.dcm"


def _events_only(studies: list[Any]) -> list[Any]:
    return [m for m in messages_from_studies(studies) if m.kind == "protocol"]


def test_bad_messages_go_to_the_dlq_and_good_ones_are_assessed(
    kafka_bootstrap: str, fake_pipeline: Any
) -> None:
    settings = settings_for(kafka_bootstrap, partitions=2)
    studies = simulate_feed(12, seed=3)
    good = _events_only(studies)
    expected_ids = {
        (s.protocol_event.event_id, a.index) for s in studies for a in s.protocol_event.acquisitions
    }
    event = json.loads(studies[0].protocol_event.to_json())
    del event["planning"]  # a schema violation: required field missing
    truncated = RDSR.read_bytes()[:700]
    bad: list[tuple[str, bytes]] = [
        (settings.topics.protocol, b'{"schema": "lowdose.protocol/1", "event_id": '),
        (settings.topics.protocol, json.dumps(event).encode()),
        (settings.topics.rdsr, b"this is not DICOM at all" * 10),
        (settings.topics.rdsr, truncated),
    ]
    service = Service(settings, pipeline_factory=fake_pipeline)
    with ServiceThread(service):
        p = producer(kafka_bootstrap)
        c = client_producer(kafka_bootstrap)
        send(c, settings.topics, good[:6])
        for topic, value in bad:
            p.send(topic, key=b"bad", value=value)
        send(c, settings.topics, good[6:])
        p.close()
        c.close(timeout_s=30)
        assessments = drain(
            kafka_bootstrap,
            settings.topics.assessments,
            until=lambda rs: len(rs) >= len(expected_ids),
        )
        dlq = drain(kafka_bootstrap, settings.topics.dlq, until=lambda rs: len(rs) >= len(bad))
    got = {
        (json.loads(r.value)["input_id"], json.loads(r.value)["acquisition_index"])
        for r in assessments
    }
    assert got == expected_ids
    assert len(dlq) == len(bad)
    by_value = {bytes(r.value): r for r in dlq}
    assert set(by_value) == {value for _, value in bad}
    for topic, value in bad:
        record = by_value[value]
        assert header(record, deadletter.HEADER_SOURCE_TOPIC) == topic
        assert header(record, deadletter.HEADER_SOURCE_PARTITION) is not None
        assert header(record, deadletter.HEADER_SOURCE_OFFSET) is not None
        assert header(record, deadletter.HEADER_ERROR_TYPE) in ("InputError", "DicomError")
        assert header(record, deadletter.HEADER_ERROR_MESSAGE)
    reasons = {header(by_value[v], deadletter.HEADER_ERROR_MESSAGE) for _, v in bad[:2]}
    assert any("planning" in (r or "") for r in reasons)  # the schema violation names the field
    assert service.stats.bad == len(bad)


def test_records_larger_than_the_fetch_limit_do_not_starve_behind_a_waiting_report(
    kafka_bootstrap: str, fake_pipeline: Any
) -> None:
    """The broker returns a record batch larger than ``max_partition_fetch_bytes`` only when it
    is the first data of a fetch response. Events and reports here are all larger than the
    configured limit (1 KiB, far below the topics' max.message.bytes); a report fetched before
    its event is sought back to wait, and must not then keep the event from being fetched until
    ``max_defer_s`` (60 s) runs out."""
    settings = settings_for(kafka_bootstrap, partitions=1, max_partition_fetch_bytes=1024)
    studies = simulate_feed(6, seed=11)
    messages = list(messages_from_studies(studies))
    # Every event first, then the reports, the last study's first: that report is fetched while
    # its event still waits behind five others on the protocol partition.
    events = [m for m in messages if m.kind == "protocol"]
    messages = events + [m for m in messages if m.kind != "protocol"][::-1]
    assert all(len(m.value) > 1024 for m in messages)
    expected = sum(len(s.protocol_event.acquisitions) + 1 for s in studies)
    ensure_topics(settings)
    # One record per record batch (each acknowledged before the next is sent), all in the log
    # before the service starts: a fetch then returns one record, from its first partition.
    p = producer(kafka_bootstrap, linger_ms=0)
    for m in messages:
        p.send(m.topic(settings.topics), key=m.key, value=m.value, headers=list(m.headers)).get(
            timeout=30
        )
    p.close()
    service = Service(settings, pipeline_factory=fake_pipeline)
    with ServiceThread(service):
        assessments = drain(
            kafka_bootstrap,
            settings.topics.assessments,
            until=lambda rs: len(rs) >= expected,
            timeout_s=30,
        )
    kinds = [json.loads(r.value)["input_kind"] for r in assessments]
    assert kinds.count("dose_report") == len(studies), "every report assessed within 30 s"
    loop = service._loop
    assert loop is not None and loop.alignment.deferred > 0, "a report was sought back to wait"
    assert len(assessments) == expected
