"""Repeats and extra contrast phases are avoidable dose (issue 9; severity rule 3).

A surplus acquisition (the later one of a pair flagged ``repeat_acquisition`` or
``multiphase_contrast``) has its whole DLP and effective dose in the avoidable totals, replacing
(never adding to) its coverage part, and its proposal is to omit it, saving all of it. Omission
is proposed only when the earlier acquisitions over the range cover this one's part of the needed
range: a proposal never cuts into the anatomy planning needs.
"""

from __future__ import annotations

import pytest

from optimiser.assessment import Assessment
from optimiser.pipeline import Pipeline
from optimiser.records import CtAcquisition, DoseReport
from tests.test_pipeline import UID, codes, event, prostate_helical


def omitted(a: Assessment) -> bool:
    return a.proposal is not None and any(
        c.startswith("omit this acquisition") for c in a.proposal.changes
    )


def assert_whole_acquisition_avoidable(a: Assessment) -> None:
    assert a.dlp_mgy_cm > 0 and a.effective_dose_msv > 0
    assert a.avoidable_excess_dlp_mgy_cm == pytest.approx(a.dlp_mgy_cm)
    assert a.avoidable_effective_dose_msv == pytest.approx(a.effective_dose_msv)
    assert a.avoidable_excess_length_mm == pytest.approx(a.scan_length_mm)
    assert a.proposal is not None and omitted(a)
    assert a.proposal.dlp_mgy_cm == 0.0 and a.proposal.ctdivol_mgy == 0.0
    assert a.proposal.mas == 0.0
    assert a.proposal.dlp_saving_mgy_cm == pytest.approx(a.dlp_mgy_cm)
    assert a.proposal.effective_dose_saving_msv == pytest.approx(a.effective_dose_msv)


def test_a_repeat_in_a_protocol_event_is_proposed_omitted() -> None:
    ev = event(
        [
            {"z_start_mm": 0, "z_end_mm": 200, "pitch": 1.0, "total_collimation_mm": 24},
            {"z_start_mm": 10, "z_end_mm": 190, "pitch": 1.0, "total_collimation_mm": 24},
        ]
    )
    first, second = Pipeline().process([ev])
    assert codes(second)["repeat_acquisition"] == "warning"
    assert_whole_acquisition_avoidable(second)
    # the first is the one kept: never proposed omitted, its avoidable dose is its coverage part
    assert not omitted(first)
    assert first.avoidable_excess_dlp_mgy_cm < first.dlp_mgy_cm
    assert "its DLP" in second.proposal.changes[0]  # type: ignore[union-attr]


def test_an_extra_contrast_phase_is_proposed_omitted() -> None:
    ev = event(
        [
            {"z_start_mm": 0, "z_end_mm": 200},
            {"z_start_mm": 0, "z_end_mm": 200, "contrast": "arterial"},
        ]
    )
    first, second = Pipeline().process([ev])
    assert codes(second)["multiphase_contrast"] == "warning"
    assert_whole_acquisition_avoidable(second)
    assert not omitted(first)


def test_surplus_replaces_the_coverage_part_and_never_double_counts() -> None:
    # The repeat reaches 60 mm beyond N: its coverage excess is part of its DLP, so the
    # avoidable total is its whole DLP, not DLP plus excess.
    ev = event(
        [
            {"z_start_mm": 0, "z_end_mm": 200},
            {"z_start_mm": 0, "z_end_mm": 260},
        ],
        planning={"needed_z_mm": [0, 200]},
    )
    _, second = Pipeline().process([ev])
    assert "repeat_acquisition" in codes(second)
    assert second.excess_dlp_mgy_cm > 0
    assert_whole_acquisition_avoidable(second)


def test_a_longer_repeat_that_covers_more_of_the_needed_range_is_not_omitted() -> None:
    # The earlier acquisition covers 60..140 only; the later one covers all of N 0..200. They
    # overlap over the whole of the shorter (a repeat), but omitting the later one would lose
    # needed anatomy: no omission, and the avoidable dose stays its coverage part.
    ev = event(
        [
            {"z_start_mm": 60, "z_end_mm": 140},
            {"z_start_mm": 0, "z_end_mm": 200},
        ]
    )
    _, second = Pipeline().process([ev])
    assert "repeat_acquisition" in codes(second)
    assert not omitted(second)
    assert second.avoidable_excess_dlp_mgy_cm < second.dlp_mgy_cm
    f = next(f for f in second.findings if f.code == "repeat_acquisition")
    assert f.evidence["omission_keeps_needed_range"] is False


def _report(acq: CtAcquisition, sop: str) -> DoseReport:
    return DoseReport(
        source="test.dcm",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67",
        sop_instance_uid=sop,
        study_instance_uid=UID,
        acquisitions=[acq],
    )


def test_a_repeat_in_a_continued_report_is_proposed_omitted() -> None:
    p = Pipeline()
    p.process([prostate_helical()])
    spiral = {"acquisition_type": "spiral", "mean_ctdivol_mgy": 16.0, "dlp_mgy_cm": 320.0}
    [a1] = p.process([_report(CtAcquisition("e1", **spiral, top_z_mm=200.0, bottom_z_mm=0.0,
                                            contrast="none"), "1.2.3.1")])  # fmt: skip
    [a2] = p.process([_report(CtAcquisition("e2", **spiral, top_z_mm=195.0, bottom_z_mm=5.0,
                                            contrast="none"), "1.2.3.2")])  # fmt: skip
    assert not omitted(a1)
    assert codes(a2)["repeat_acquisition"] == "warning"
    assert_whole_acquisition_avoidable(a2)
    assert a2.avoidable_excess_dlp_mgy_cm == pytest.approx(320.0)


def test_correct_single_acquisition_is_not_surplus() -> None:
    [a] = Pipeline().process([event([{"z_start_mm": 0, "z_end_mm": 200}])])
    assert not omitted(a)
    assert a.avoidable_excess_dlp_mgy_cm < a.dlp_mgy_cm
