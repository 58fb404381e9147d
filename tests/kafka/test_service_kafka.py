"""The consumer service against a real broker, with a stand-in pipeline (mechanics only).

Bad input goes to the DLQ with its reason while the good messages around it are assessed; study
state written to the changelog is rebuilt by a second service that takes the partitions over.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from optimiser.simulate import simulate_feed
from streams import deadletter
from streams.publish import messages_from_studies, send
from streams.service import Service
from streams.testing import ServiceThread, client_producer, drain, header, producer, settings_for
from tests.paths import SHARED

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
