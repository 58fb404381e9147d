"""Issue 20 defect 3: the over-ranging fit is bounded to the range its sources cover.

The fit W x (0.94 + 1.13 x pitch) was made on four 16-slice scanners (van der Molen &
Geleijns, Radiology 2007;242:208-216; W <= 24 mm, 16 x 1.5 mm). Beyond that it is an
extrapolation (the GE Optima CT660 reports at 40 mm already measure 0.57-0.64 x it; Schilham et
al., RadioGraphics 2010;30:1057-1067: much more over-ranging at 64 slices and above, up to about
half removed by dynamic collimation). A prediction that depends on the extrapolated part raises
info only; what holds without it (the planned length alone, or the avoidable excess of a planned
range) keeps its severity.

Both directions: the breast event of the issue (W 80 mm, CTDIvol 17 mGy below the 26 mGy DRL)
raises no warning; a 16-slice exam above the exam-DLP DRL still warns; a wide-beam exam whose
planned length alone passes the DRL still warns; a wide-beam over-scan still alerts on
excess_coverage.
"""

from __future__ import annotations

import json
from typing import Any

from optimiser.assessment import Assessment
from optimiser.events import parse_protocol_event
from optimiser.pipeline import Pipeline

BREAST_N = (-60.0, 250.0)


def _event(
    ctdivol: float, collimation: float, pitch: float = 1.0, z: tuple[float, float] = BREAST_N
) -> dict[str, Any]:
    return {
        "schema": "lowdose.protocol/1",
        "event_id": "overrange-1",
        "emitted_at": "2026-01-05T09:00:00Z",
        "scanner": {"station_name": "CTSIM6", "manufacturer": "GE", "model": "Revolution"},
        "study": {
            "study_instance_uid": "2.25.2020202020202003",
            "accession_number": "OVR1",
            "study_description": "RT Planning CT",
            "purpose": "rt_planning",
            "labelled_planning": True,
        },
        "planning": {"site": "breast", "needed_z_mm": list(BREAST_N)},
        "acquisitions": [
            {
                "index": 0,
                "type": "localizer",
                "z_start_mm": 300.0,
                "z_end_mm": -110.0,
                "kvp": 120.0,
                "mas": 30.0,
                "ctdivol_mgy": 0.1,
                "phantom": "body",
                "series_description": "Topogram",
            },
            {
                "index": 1,
                "type": "spiral",
                "z_start_mm": z[1],
                "z_end_mm": z[0],
                "kvp": 120.0,
                "mas": 200.0,
                "ctdivol_mgy": ctdivol,
                "phantom": "body",
                "pitch": pitch,
                "total_collimation_mm": collimation,
                "rotation_time_s": 0.5,
                "slice_thickness_mm": 2.0,
                "contrast": "none",
                "series_description": "Helical 2mm",
            },
        ],
    }


def _assess(event: dict[str, Any]) -> Assessment:
    out = Pipeline().process([parse_protocol_event(json.dumps(event).encode(), source="test")])
    assert len(out) == 1
    return out[0]


def _serious(a: Assessment) -> list[tuple[str, str]]:
    return [(f.code, f.severity) for f in a.findings if f.severity in ("warning", "alert")]


def _exam_dlp(a: Assessment) -> list[Any]:
    return [
        f
        for f in a.findings
        if f.code == "above_reference_level" and f.evidence.get("level") == "exam"
    ]


def test_the_issue_breast_event_on_an_80_mm_beam_raises_no_warning() -> None:
    a = _assess(_event(17.0, 80.0))
    assert _serious(a) == []
    for f in _exam_dlp(a):
        assert f.severity == "info"
        assert f.evidence["overranging_extrapolated"] is True
        assert "extrapolat" in f.message


def test_a_160_mm_beam_at_pitch_1_is_silent_too() -> None:
    assert _serious(_assess(_event(17.0, 160.0))) == []


def test_a_16_slice_exam_above_the_exam_dlp_drl_still_warns() -> None:
    # 24 mm at pitch 1: over-ranging 24 x 2.07 = 49.7 mm, inside the fit; CTDIvol 22 < 26 mGy,
    # exam DLP 22 x (31 + 4.97) = 791.3 mGy.cm > 732 (1.08 x the breast DRL): a warning.
    a = _assess(_event(22.0, 24.0))
    assert _serious(a) == [("above_reference_level", "warning")]
    (f,) = _exam_dlp(a)
    assert "overranging_extrapolated" not in f.evidence
    assert a.overranging_mm == 49.68


def test_a_wide_beam_exam_above_the_drl_on_its_planned_length_alone_still_warns() -> None:
    # CTDIvol 25 < 26 mGy; the planned 310 mm alone give 775 mGy.cm > 732 (1.06 x): a warning
    # whatever the over-ranging of the 80 mm beam.
    a = _assess(_event(25.0, 80.0))
    assert _serious(a) == [("above_reference_level", "warning")]
    (f,) = _exam_dlp(a)
    assert f.evidence["exam_dlp_lower_bound_mgy_cm"] == 775.0


def test_a_wide_beam_over_scan_still_alerts_on_excess_coverage() -> None:
    # Planned 100 mm below and 150 mm above N: 90 + 140 = 230 mm avoidable at CTDIvol 10.
    a = _assess(_event(10.0, 80.0, z=(BREAST_N[0] - 100.0, BREAST_N[1] + 150.0)))
    assert ("excess_coverage", "alert") in _serious(a)


def _report_excess(collimation: float) -> Any:
    """A prostate dose report with no scanning length and no z, placed on its event's planned
    acquisition (centre 100 mm): irradiated 896 / 16 = 560 mm about N 0..200 mm. Its planned
    range is the irradiated range less the modelled over-ranging (severity rule 1)."""
    from tests.test_pipeline import _report, _spiral, prostate_helical

    p = Pipeline()
    p.process([prostate_helical()])
    acq = _spiral("e1", dlp=896.0, nominal_total_collimation_mm=collimation, pitch_factor=1.0)
    [a] = p.process([_report([acq])])
    return a


def test_a_report_without_scanning_length_on_16_slices_still_alerts() -> None:
    # 560 - 49.68 = 510.3 mm planned, 290.3 mm beyond N +- 10 mm: 52% of the DLP -> alert.
    a = _report_excess(24.0)
    assert ("excess_coverage", "alert") in _serious(a)


def test_a_report_whose_planned_range_rests_on_extrapolated_overranging_is_info() -> None:
    # 80 mm: the planned range 560 - 134.3 mm rests on the model beyond its fitted 24 mm; the
    # avoidable excess it gives (205.7 mm, 37%) is info, with the reason in the message.
    a = _report_excess(80.0)
    assert _serious(a) == []
    (f,) = [f for f in a.findings if f.code == "excess_coverage"]
    assert f.severity == "info" and f.evidence["overranging_extrapolated"] is True
    assert "extrapolated" in f.message
    assert any("extrapolated beyond the 24 mm" in n for n in a.notes)


def test_a_listed_model_has_its_own_reduction_an_unlisted_wide_beam_the_bound() -> None:
    # GE Optima CT660 (listed, 0.36 from its shared reports): 40 x 2.07 x 0.64 = 52.99 mm over
    # the whole W; an unlisted 40 mm scanner: (24 + 16 x 0.73) x 2.07 = 73.86 mm; both
    # extrapolated (W > 24 mm), a 16-slice 24 mm scanner neither.
    def over(model: str, collimation: float) -> Assessment:
        event = _event(10.0, collimation)
        event["scanner"]["model"] = model
        return _assess(event)

    optima, other, narrow = over("Optima  ct660", 40.0), over("Revolution", 40.0), over("X", 24.0)
    assert optima.overranging_mm == 52.99
    assert other.overranging_mm == 73.86
    assert narrow.overranging_mm == 49.68
    assert [any("extrapolated" in n for n in a.notes) for a in (optima, other, narrow)] == [
        True,
        True,
        False,
    ]
