"""Kafka integration tests: one broker per session (``tests.support.kafka``), own topics per test.

``FakePipeline`` stands in for :class:`optimiser.pipeline.Pipeline` in the tests of the service's
mechanics (commit, DLQ, state rebuild): one assessment per planned acquisition, alert when the
planned CTDIvol exceeds 20 mGy, and a study-state write per event, so the changelog is exercised.
"""

from __future__ import annotations

from typing import Any

import pytest

from optimiser.assessment import Assessment, Finding, assessment_id
from optimiser.errors import InputError
from optimiser.events import ProtocolEvent
from optimiser.state import StudyState, StudyStateStore
from tests.blank import blank_assessment
from tests.support.kafka import kafka_bootstrap, kafka_broker, kafka_tls

__all__ = ["kafka_bootstrap", "kafka_broker", "kafka_tls"]

ALERT_CTDIVOL_MGY = 20.0


class FakePipeline:
    def __init__(self, store: StudyStateStore) -> None:
        self.store = store
        self.warmed = False
        self.calls = 0

    def warm_up(self) -> None:
        self.warmed = True

    def process(self, items: list[Any]) -> list[Assessment]:
        self.calls += 1
        out: list[Assessment] = []
        for item in items:
            if not isinstance(item, ProtocolEvent):
                uid = getattr(item, "study_instance_uid", "?")
                state = self.store.get(uid)
                if state is None or state.protocol_event is None:
                    raise InputError("no protocol event for this study", source=uid)
                out.append(_report_assessment(item, state))
                continue
            study = item.study.study_instance_uid
            previous = self.store.get(study)
            seen = list(previous.assessed_event_uids) if previous else []
            self.store.put(
                StudyState(
                    study_instance_uid=study,
                    protocol_event=item,
                    assessed_event_uids=[*seen, item.event_id],
                )
            )
            for acq in item.acquisitions:
                out.append(_assessment(item, acq.index, acq.ctdivol_mgy, len(seen)))
        return out


def _assessment(event: ProtocolEvent, index: int, ctdivol: float, earlier: int) -> Assessment:
    findings = []
    if ctdivol > ALERT_CTDIVOL_MGY:
        findings.append(Finding(code="above_reference_level", severity="alert", message="high"))
    return blank_assessment(
        assessment_id=assessment_id("protocol_event", event.event_id, str(index)),
        input_kind="protocol_event",
        input_id=event.event_id,
        study_instance_uid=event.study.study_instance_uid,
        acquisition_index=index,
        site=event.planning.site,
        placement="planned",
        ctdivol_mgy=ctdivol,
        findings=findings,
        notes=[f"earlier events for this study: {earlier}"],
    )


def _report_assessment(report: Any, state: StudyState) -> Assessment:
    assert state.protocol_event is not None
    return blank_assessment(
        assessment_id=assessment_id("dose_report", report.source, "0"),
        input_kind="dose_report",
        input_id=report.source,
        study_instance_uid=report.study_instance_uid,
        site=state.protocol_event.planning.site,
        placement="report_z",
        ctdivol_mgy=None,
        notes=[f"protocol event {state.protocol_event.event_id}"],
    )


@pytest.fixture
def fake_pipeline() -> type[FakePipeline]:
    return FakePipeline
