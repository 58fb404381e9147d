"""Issue 20, clinical choice "a repeat with a reason" (planning-ct.md section 8: a diagnostic-grade
sign is "repeated acquisitions over one range *without a recorded reason*").

A repeat whose later acquisition records why it was repeated (the protocol event's
``repeat_reason``, schema ``lowdose.protocol/1.1``; a dose report's TID 10013 Comment, or its
Acquisition Protocol name, that names a repeat and its reason) is ``repeat_acquisition`` at info,
naming the reason, and is not claimed as avoidable dose; without a recorded reason it stays a
warning, proposed for omission. Both directions, for events and for dose reports.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from optimiser import repeats
from optimiser.assessment import Assessment, Finding
from optimiser.dicom import read_dose_report
from optimiser.errors import InputError
from optimiser.events import parse_protocol_event
from optimiser.pipeline import Pipeline
from optimiser.records import Code
from simulator.delivered import DeliveredAcquisition
from simulator.department import ScannerModel
from simulator.rdsr_writer import RdsrContext, write_rdsr
from tests.paths import RDSR_DIR

N_MM = (-1000.0, -770.0)
STUDY = "2.25.2020202020202021"


def _acquisition(index: int, **extra: Any) -> dict[str, Any]:
    acq: dict[str, Any] = {
        "index": index,
        "type": "spiral",
        "z_start_mm": N_MM[1],
        "z_end_mm": N_MM[0],
        "kvp": 120.0,
        "mas": 112.9,
        "ctdivol_mgy": 12.0,
        "phantom": "body",
        "pitch": 0.8,
        "total_collimation_mm": 40.0,
        "slice_thickness_mm": 2.0,
        "contrast": "none",
        "series_description": f"Helical {index}",
    }
    acq.update(extra)
    return acq


def _event(second: dict[str, Any], schema: str = "lowdose.protocol/1.1") -> dict[str, Any]:
    return {
        "schema": schema,
        "event_id": "repeat-reason-1",
        "emitted_at": "2026-01-05T09:00:00Z",
        "scanner": {"station_name": "CTSIM5", "manufacturer": "GE", "model": "Discovery RT"},
        "study": {"study_instance_uid": STUDY, "study_description": "RT Planning CT"},
        "planning": {"site": "prostate", "needed_z_mm": list(N_MM)},
        "acquisitions": [_acquisition(1), _acquisition(2, **second)],
    }


def _assess_event(event: dict[str, Any]) -> list[Assessment]:
    return Pipeline().process([parse_protocol_event(json.dumps(event).encode(), source="test")])


def _repeat(a: Assessment) -> Finding:
    return next(f for f in a.findings if f.code == "repeat_acquisition")


# --- the protocol event: schema and minor version -----------------------------------------------


def test_an_old_event_without_a_reason_is_still_valid() -> None:
    event = parse_protocol_event(json.dumps(_event({}, schema="lowdose.protocol/1")))
    assert event.schema_ == "lowdose.protocol/1"
    assert event.acquisitions[1].repeat_reason is None


def test_a_reason_needs_the_new_minor_version() -> None:
    with pytest.raises(InputError, match=r"lowdose\.protocol/1\.1"):
        parse_protocol_event(
            json.dumps(_event({"repeat_reason": "patient_motion"}, schema="lowdose.protocol/1"))
        )


def test_other_needs_a_text_and_a_text_needs_a_reason() -> None:
    with pytest.raises(InputError, match="repeat_reason_text"):
        parse_protocol_event(json.dumps(_event({"repeat_reason": "other"})))
    with pytest.raises(InputError, match="repeat_reason"):
        parse_protocol_event(json.dumps(_event({"repeat_reason_text": "moved"})))
    with pytest.raises(InputError, match="repeat_reason"):
        parse_protocol_event(json.dumps(_event({"repeat_reason": "boredom"})))


def test_an_event_round_trips_its_reason_and_version() -> None:
    raw = _event({"repeat_reason": "positioning", "repeat_reason_text": "arms re-positioned"})
    event = parse_protocol_event(json.dumps(raw))
    again = parse_protocol_event(event.to_json())
    assert again == event and again.schema_ == "lowdose.protocol/1.1"


# --- the protocol event: severity -------------------------------------------------------------


def test_a_planned_repeat_with_a_reason_is_info_naming_it_and_not_avoidable() -> None:
    out = _assess_event(
        _event({"repeat_reason": "patient_motion", "repeat_reason_text": "patient coughed"})
    )
    later = out[1]
    finding = _repeat(later)
    assert finding.severity == "info"
    assert "patient motion" in finding.message and "patient coughed" in finding.message
    assert finding.evidence["repeat_reason"] == "patient_motion"
    assert finding.evidence["repeat_reason_source"] == "protocol_event"
    assert [f.code for f in later.findings if f.severity in ("warning", "alert")] == []
    # Justified: not claimed as avoidable, not proposed for omission.
    assert later.avoidable_excess_dlp_mgy_cm == 0.0
    assert later.proposal is not None and later.proposal.dlp_mgy_cm > 0.0
    assert not any(c.startswith("omit") for c in later.proposal.changes)


def test_a_planned_repeat_without_a_reason_stays_a_warning_and_is_avoidable() -> None:
    for schema in ("lowdose.protocol/1", "lowdose.protocol/1.1"):
        out = _assess_event(_event({}, schema=schema))
        finding = _repeat(out[1])
        assert finding.severity == "warning"
        assert "repeat_reason" not in finding.evidence
        assert out[1].avoidable_excess_dlp_mgy_cm == out[1].dlp_mgy_cm
        assert out[1].proposal is not None and out[1].proposal.dlp_mgy_cm == 0.0


def test_a_reason_on_the_first_acquisition_does_not_justify_the_second() -> None:
    raw = _event({})
    raw["acquisitions"][0]["repeat_reason"] = "artefact"
    finding = _repeat(_assess_event(raw)[1])
    assert finding.severity == "warning"


# --- the dose report: Comment (121106, DCM) and the Acquisition Protocol -----------------------


def _delivered(index: int, protocol: str, comment: str | None) -> DeliveredAcquisition:
    return DeliveredAcquisition(
        index=index,
        acquisition_type="spiral",
        protocol=protocol,
        contrast=False,
        irradiation_event_uid=f"2.25.77{index}",
        top_z_mm=N_MM[1],
        bottom_z_mm=N_MM[0],
        exposure_time_s=10.0,
        single_collimation_mm=0.625,
        total_collimation_mm=40.0,
        pitch=0.8,
        kvp=120.0,
        max_tube_current_ma=200.0,
        mean_tube_current_ma=200.0,
        rotation_time_s=0.5,
        ctdivol_mgy=12.0,
        phantom="body",
        dlp_mgy_cm=12.0 * 30.0,
        exposed_range_mm=300.0,
        comment=comment,
    )


def _report(second_protocol: str, second_comment: str | None) -> bytes:
    """A two-event dose report from the simulator's TID 10011 writer: the first event carries
    Siemens' kind of technical comment, the second ``second_protocol`` and ``second_comment``."""
    scanner = ScannerModel("CTSIM5", "GE MEDICAL SYSTEMS", "Discovery RT", "DRT1", 0.625, 40.0, "1")
    ctx = RdsrContext(
        study_instance_uid=STUDY,
        series_instance_uid="2.25.771",
        sop_instance_uid="2.25.772",
        device_observer_uid="2.25.773",
        frame_of_reference_uid="2.25.774",
        accession_number="REP1",
        patient_id="PAT",
        patient_name="TEST^REPEAT",
        patient_sex="O",
        patient_birth_date="19600101",
        study_description="RT Planning CT",
        study_datetime=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
        scanner=scanner,
        intent="therapeutic",
        target_region=Code("12921003", "SCT", "Pelvis"),
    )
    technical = (
        "Internal technical scan parameters: Organ Characteristic = Respiratory, Body Size = Adult"
    )
    return write_rdsr(
        ctx,
        [
            _delivered(0, "RT Pelvis", technical),
            _delivered(1, second_protocol, second_comment),
        ],
    )


def _assess_report(second_protocol: str, second_comment: str | None) -> list[Assessment]:
    data = _report(second_protocol, second_comment)
    return Pipeline().process([read_dose_report(data, source="repeat.dcm")])


def test_the_reader_keeps_the_comment_of_each_event() -> None:
    report = read_dose_report(_report("RT Pelvis", "Rescan: patient moved"), source="r.dcm")
    assert [a.comment for a in report.acquisitions] == [
        "Internal technical scan parameters: Organ Characteristic = Respiratory, Body Size = Adult",
        "Rescan: patient moved",
    ]


@pytest.mark.parametrize(
    ("protocol", "comment", "reason", "source"),
    [
        ("RT Pelvis", "Repeat scan due to patient motion", "patient_motion", "dose_report_comment"),
        ("RT Pelvis", "rescan - metal artifact from hip", "artefact", "dose_report_comment"),
        ("RT Pelvis", "Re-scan: repositioned (rotation)", "positioning", "dose_report_comment"),
        ("RT Pelvis REPEAT motion", None, "patient_motion", "acquisition_protocol"),
    ],
)
def test_a_reported_repeat_with_a_stated_reason_is_info(
    protocol: str, comment: str | None, reason: str, source: str
) -> None:
    out = _assess_report(protocol, comment)
    finding = _repeat(out[1])
    assert finding.severity == "info", finding.message
    assert finding.evidence["repeat_reason"] == reason
    assert finding.evidence["repeat_reason_source"] == source
    assert out[1].avoidable_excess_dlp_mgy_cm == 0.0


@pytest.mark.parametrize(
    ("protocol", "comment"),
    [
        ("RT Pelvis", None),
        ("RT Pelvis", "Repeat"),  # a repeat, but no reason stated
        ("RT Pelvis", "patient moved"),  # a reason, but not said to be why this was repeated
        ("RT Pelvis REPEAT", None),
        (
            "4DCT",  # Siemens' own comment: "Respiratory" is no reason for a repeat
            "Internal technical scan parameters: Organ Characteristic = Respiratory, Body Size = "
            "Adult, Body Region = Body, X-ray Modulation Type = Z_EC",
        ),
    ],
)
def test_a_reported_repeat_without_a_stated_reason_stays_a_warning(
    protocol: str, comment: str | None
) -> None:
    out = _assess_report(protocol, comment)
    finding = _repeat(out[1])
    assert finding.severity == "warning", finding.message
    assert out[1].avoidable_excess_dlp_mgy_cm == out[1].dlp_mgy_cm


def test_a_report_takes_the_reason_of_the_planned_acquisition_it_is_by_order() -> None:
    """The event (1.1) planned the repeat with its reason; the report has no Comment: the
    report's second spiral is the event's second spiral, so the reason carries over."""
    event = parse_protocol_event(json.dumps(_event({"repeat_reason": "artefact"})))
    pipeline = Pipeline()
    pipeline.process([event])
    out = pipeline.process([read_dose_report(_report("RT Pelvis", None), source="r.dcm")])
    finding = _repeat(out[1])
    assert finding.severity == "info"
    assert finding.evidence["repeat_reason"] == "artefact"
    assert finding.evidence["repeat_reason_source"] == "protocol_event"
    # An event without a reason leaves the reported repeat a warning.
    pipeline = Pipeline()
    pipeline.process([parse_protocol_event(json.dumps(_event({})))])
    out = pipeline.process([read_dose_report(_report("RT Pelvis", None), source="r.dcm")])
    assert _repeat(out[1]).severity == "warning"


# --- the shared real reports: their comments record no repeat reason ---------------------------


@pytest.mark.realdata
def test_no_shared_real_report_records_a_repeat_reason() -> None:
    """The shared reports' Comments are vendor technical notes (Siemens: "Internal technical
    scan parameters: Organ Characteristic = Respiratory, ..."; GE: "QA"): read, never a reason,
    so none of their findings changes."""
    comments = {}
    for path in sorted(RDSR_DIR.glob("*.dcm")):
        report = read_dose_report(path.read_bytes(), source=path.name)
        for acq in report.acquisitions:
            assert repeats.from_report(acq, 0, []) is None, (path.name, acq.comment)
            if acq.comment:
                comments[path.name] = acq.comment
    assert comments["CT-RDSR-GEPixelMed.dcm"] == "QA"
    assert "Organ Characteristic = Respiratory" in comments["CT-RDSR-Siemens-Multi-3.dcm"]
    assert len(comments) == 7  # GE PixelMed and the six Siemens reports


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Repeat: irregular breathing", "breathing"),
        ("REPEATED - pt coughed", "patient_motion"),
        ("retake, set-up error", "positioning"),
        ("re-acquired for metal artefacts", "artefact"),
        ("Repeat", None),
        ("patient motion", None),
        ("repeatability QA phantom", None),
        ("Internal technical scan parameters: Organ Characteristic = Respiratory", None),
        (None, None),
    ],
)
def test_the_free_text_rule(text: str | None, reason: str | None) -> None:
    assert repeats.reason_from_text(text) == reason
