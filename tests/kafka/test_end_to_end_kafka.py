"""End to end on a real broker with the real pipeline: a simulated department feed in, one
assessment per acquisition out, alerts exactly for the flagged ones, values equal to running the
same Pipeline in-process on the same inputs (what ``lowdose assess`` does)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from optimiser.dicom import read_dicom
from optimiser.pipeline import Pipeline
from simulator import simulate_feed
from streams.publish import messages_from_studies
from streams.service import HEADER_ASSESSMENT_ID, Service
from tests.support.kafka import ServiceThread, drain, header, producer, settings_for

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

N_STUDIES = 300


def _publish(bootstrap: str, settings: Any, studies: list[Any]) -> list[tuple[Any, Any]]:
    """Send event then report per study; returns (message, RecordMetadata) in send order."""
    p = producer(bootstrap)
    sent = []
    for message in messages_from_studies(studies):
        future = p.send(
            message.topic(settings.topics),
            key=message.key,
            value=message.value,
            headers=list(message.headers),
        )
        if message.kind == "protocol":
            # As a scanner does (and lowdose publish): the event is on the broker before its
            # report, even when a produce to the new topic is retried.
            future.get(timeout=60)
        sent.append((message, future))
    p.flush()
    p.close()
    return [(m, f.get(timeout=30)) for m, f in sent]


def _in_process(sent: list[tuple[Any, Any]]) -> list[Any]:
    """The same inputs through one in-process Pipeline, named as the service names them."""
    pipeline = Pipeline()
    items = []
    for message, meta in sent:
        source = f"{meta.topic}/{meta.partition}@{meta.offset}"
        if message.kind == "protocol":
            from optimiser.events import parse_protocol_event

            items.append(parse_protocol_event(message.value, source=source))
        else:
            items.append(read_dicom(message.value, source=source))
    return pipeline.process(items)


def test_simulated_feed_end_to_end(kafka_bootstrap: str) -> None:
    settings = settings_for(kafka_bootstrap, partitions=3, max_batch=200)
    studies = simulate_feed(N_STUDIES, seed=11)
    with ServiceThread(Service(settings)) as running:
        sent = _publish(kafka_bootstrap, settings, studies)
        expected = {a.assessment_id: a for a in _in_process(sent)}
        assessments = drain(
            kafka_bootstrap,
            settings.topics.assessments,
            until=lambda rs: len({header(r, HEADER_ASSESSMENT_ID) for r in rs}) >= len(expected),
            timeout_s=150,
        )
        flagged = {i for i, a in expected.items() if a.is_alert}
        alerts = drain(
            kafka_bootstrap, settings.topics.alerts, until=lambda rs: len(rs) >= len(flagged)
        )
        dlq = drain(kafka_bootstrap, settings.topics.dlq, until=lambda rs: False, timeout_s=0.1)
    stats = running.service.stats
    assert dlq == []
    got = {header(r, HEADER_ASSESSMENT_ID): r for r in assessments}
    assert len(assessments) == len(got), "no duplicates without a crash"
    assert set(got) == set(expected)
    for assessment_id, record in got.items():
        assert record.key == expected[assessment_id].study_instance_uid.encode()
        assert json.loads(record.value) == json.loads(expected[assessment_id].to_json())
    assert {header(r, HEADER_ASSESSMENT_ID) for r in alerts} == flagged
    assert len(alerts) == len(flagged)
    assert flagged, "the simulated feed injects problems, so some assessments are flagged"
    assert stats.assessed == len(expected)
    assert stats.bad == 0
