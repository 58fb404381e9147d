"""Contrast phases end to end (issue 9 defect 5, severity rule 8): the event contract, dose reports,
the study-state changelog and the study findings of the pipeline."""

from __future__ import annotations

import json
from typing import Any

import pytest

from optimiser.errors import InputError
from optimiser.events import CONTRAST_PHASES, parse_protocol_event
from optimiser.pipeline import Pipeline
from optimiser.records import CtAcquisition, DoseReport
from optimiser.state import StudyState
from tests.test_pipeline import UID, codes, event


def test_the_event_contract_accepts_every_phase_and_nothing_else() -> None:
    assert CONTRAST_PHASES == ("none", "with", "arterial", "portal_venous", "delayed")
    for phase in CONTRAST_PHASES:
        ev = event([{"z_start_mm": 0, "z_end_mm": 200, "contrast": phase}])
        assert ev.acquisitions[0].contrast == phase
    doc = json.loads(event([{"z_start_mm": 0, "z_end_mm": 200}]).to_json())
    assert doc["acquisitions"][0]["contrast"] == "none"  # the default
    doc["acquisitions"][0]["contrast"] = "venous"
    with pytest.raises(InputError, match="contrast"):
        parse_protocol_event(json.dumps(doc))


def test_two_enhanced_phases_in_an_event_are_multiphase_not_repeat() -> None:
    ev = event(
        [
            {"z_start_mm": 0, "z_end_mm": 200, "contrast": "arterial"},
            {"z_start_mm": 0, "z_end_mm": 200, "contrast": "portal_venous"},
        ]
    )
    first, second = Pipeline().process([ev])
    cross = {"multiphase_contrast", "repeat_acquisition"}
    assert not cross & set(codes(first))
    assert {c: s for c, s in codes(second).items() if c in cross} == {
        "multiphase_contrast": "warning"
    }
    f = next(f for f in second.findings if f.code == "multiphase_contrast")
    assert "arterial, portal venous" in f.message


def _report(acqs: list[CtAcquisition], sop: str) -> DoseReport:
    return DoseReport(
        source="test.dcm",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67",
        sop_instance_uid=sop,
        study_instance_uid=UID,
        acquisitions=acqs,
    )


def _spiral(uid: str, contrast: Any) -> CtAcquisition:
    return CtAcquisition(
        irradiation_event_uid=uid,
        acquisition_type="spiral",
        mean_ctdivol_mgy=16.0,
        dlp_mgy_cm=320.0,
        top_z_mm=200.0,
        bottom_z_mm=0.0,
        contrast=contrast,
    )


def test_two_reported_with_contrast_events_are_multiphase_across_reports() -> None:
    # Procedure Context "with contrast" twice over one range, in a report and its continuation:
    # two enhanced acquisitions (phase unspecified) are two phases.
    p = Pipeline()
    [a1] = p.process([_report([_spiral("e1", "with")], "1.2.3.1")])
    [a2] = p.process([_report([_spiral("e2", "with")], "1.2.3.2")])
    assert "multiphase_contrast" not in codes(a1)
    assert codes(a2)["multiphase_contrast"] == "warning"
    assert "repeat_acquisition" not in codes(a2)


def test_state_written_with_a_bool_contrast_reads_back_as_a_phase() -> None:
    # A changelog record from before phases were modelled: [x_lo, x_hi, bool | null].
    old = {
        "study_instance_uid": UID,
        "reported_ranges": [[0.0, 200.0, True], [0.0, 200.0, False], [0.0, 200.0, None]],
    }
    state = StudyState.from_json(json.dumps(old).encode())
    assert state.reported_ranges == [(0.0, 200.0, "with"), (0.0, 200.0, "none"), (0.0, 200.0, None)]
    again = StudyState.from_json(state.to_json())
    assert again.reported_ranges == state.reported_ranges


def test_an_old_state_with_contrast_then_a_new_enhanced_report_is_multiphase() -> None:
    from optimiser.state import MemoryStateStore

    store = MemoryStateStore()
    old = {"study_instance_uid": UID, "reported_ranges": [[-22.5, 222.5, True]]}
    store.put(StudyState.from_json(json.dumps(old).encode()))
    [a] = Pipeline(store=store).process([_report([_spiral("e9", "with")], "1.2.3.9")])
    assert codes(a).get("multiphase_contrast") == "warning"
