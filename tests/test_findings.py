"""Findings on hand-made rows: thresholds, severities and the numbers in the messages."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from optimiser.assessment import FINDING_CODES
from optimiser.dose_model import AcquisitionRow, Needed, RowResult
from optimiser.findings import (
    above_reference_level,
    acquisition_findings,
    dose_check_exceeded,
    excess_coverage,
    kv_not_calibrated,
    study_findings,
    thin_reconstruction,
)
from optimiser.proposal import build_proposal, exposure_scale
from protocols.library import builtin_library

PROSTATE = builtin_library().get("prostate")


def row(**kw: Any) -> AcquisitionRow:
    base: dict[str, Any] = {
        "input_kind": "protocol_event",
        "input_id": "e",
        "study_instance_uid": "1.2",
        "site": "prostate",
        "protocol": PROSTATE,
        "needed": Needed((0.0, 200.0), "given"),
        "lo": 0.0,
        "hi": 200.0,
        "is_planned": True,
        "helical": True,
        "collimation_mm": None,
        "pitch": None,
        "ctdivol_mgy": 10.0,
        "placement": "planned",
        "kvp": [120.0],
        "mas": 100.0,
    }
    base.update(kw)
    return AcquisitionRow(**base)


def result(x_lo: float, x_hi: float, n: tuple[float, float] = (0.0, 200.0), c: float = 10.0,
           overrange: float = 0.0, tol: float = 10.0) -> RowResult:  # fmt: skip
    """Kernel outputs worked by hand for a constant CTDIvol, effective dose left at zero: X is
    x_lo..x_hi, the planned range X less half the over-ranging at each end."""
    length = x_hi - x_lo
    inside = max(0.0, min(x_hi, n[1]) - max(x_lo, n[0]))
    excess = length - inside
    p_lo, p_hi = x_lo + overrange / 2, x_hi - overrange / 2
    avoid = (p_hi - p_lo) - max(0.0, min(p_hi, n[1] + tol) - max(p_lo, n[0] - tol))
    q_lo, q_hi = min(max(p_lo, n[0] - tol), n[0]), max(min(p_hi, n[1] + tol), n[1])
    return RowResult(
        x_lo=x_lo, x_hi=x_hi, dlp=c * length / 10, excess_length=excess,
        excess_dlp=c * excess / 10, effective_dose=0.0, excess_effective_dose=0.0,
        planned_lo=p_lo, planned_hi=p_hi, avoidable_length=avoid, avoidable_dlp=c * avoid / 10,
        avoidable_effective_dose=0.0, overrange=overrange, proposal_lo=q_lo, proposal_hi=q_hi,
        proposal_dlp=c * (q_hi - q_lo + overrange) / 10, proposal_effective_dose=0.0,
    )  # fmt: skip


def test_every_code_is_a_contract_code() -> None:
    assert len(FINDING_CODES) == 9


@pytest.mark.parametrize(
    ("x", "over", "severity"),
    [
        # N = 0..200, tolerance 10 mm; severity follows the avoidable excess only.
        ((0.0, 205.0), 0.0, None),  # inside N + tolerance, no over-ranging: silent
        ((-10.0, 210.0), 0.0, None),  # planned exactly on N +- tolerance: silent
        # on N +- tolerance with 60 mm helical over-ranging: 80 mm excess, 0 avoidable: info
        ((-40.0, 240.0), 60.0, "info"),
        ((0.0, 215.0), 0.0, "info"),  # 5 mm avoidable: 5 / 215 = 2% < 10%
        ((0.0, 240.0), 0.0, "warning"),  # 30 mm avoidable: 30 / 240 = 12.5%
        ((-50.0, 250.0), 0.0, "alert"),  # 80 mm avoidable: 80 / 300 = 26.7% >= 25%
        # same plan plus 50 mm over-ranging: 80 / 350 = 22.9%, a warning (not the total
        # 150 mm excess, 43%, the old alert)
        ((-75.0, 275.0), 50.0, "warning"),
    ],
)
def test_excess_coverage_severity(
    x: tuple[float, float], over: float, severity: str | None
) -> None:
    f = excess_coverage(row(), result(*x, overrange=over))
    assert (f.severity if f else None) == severity
    if f is not None:
        assert f.evidence["excess_length_mm"] == pytest.approx(x[1] - x[0] - 200.0)
        assert f.evidence["overranging_mm"] == over


def test_excess_coverage_message_separates_avoidable_and_overranging() -> None:
    # planned -50..250 (X -75..275, 50 mm over-ranging) at 10 mGy: 80 mm avoidable = 80 mGy.cm
    # of 350 mGy.cm (23%); over-ranging 50 mm = 50 mGy.cm, unavoidable.
    f = excess_coverage(row(), result(-75.0, 275.0, overrange=50.0))
    assert f is not None
    assert "80 mm of the planned range lie beyond the 200 mm needed" in f.message
    assert "80.0 mGy.cm (23% of the DLP)" in f.message
    assert "over-ranging adds 50 mm (50.0 mGy.cm), unavoidable" in f.message


def test_excess_coverage_on_a_guessed_n_is_info_without_a_bound() -> None:
    for guessed in (row(excess_is_lower_bound=True),
                    row(site="generic", needed=Needed((0.0, 200.0), "site_default"))):  # fmt: skip
        f = excess_coverage(guessed, result(-50.0, 250.0))
        assert f is not None and f.severity == "info"
        assert "at least" not in f.message and "in excess" not in f.message
        assert f.evidence["needed_is_guess"] is True


def test_above_reference_by_ctdivol_then_by_dlp() -> None:
    # prostate reference 17 mGy: 20 mGy is 1.18 x (warning); 26 mGy is 1.53 x (alert).
    w = above_reference_level(row(ctdivol_mgy=20.0), result(0, 200, c=20.0))
    a = above_reference_level(row(ctdivol_mgy=26.0), result(0, 200, c=26.0))
    assert w is not None and w.severity == "warning" and "1.18 x" in w.message
    assert a is not None and a.severity == "alert"
    assert above_reference_level(row(ctdivol_mgy=17.0), result(0, 200, c=17.0)) is None
    # 16 mGy over 600 mm = 960 mGy.cm > the 813 mGy.cm DLP reference: 1.18 x, a warning.
    d = above_reference_level(row(ctdivol_mgy=16.0), result(-200, 400, c=16.0))
    assert d is not None and d.evidence["quantity"] == "dlp_mgy_cm"
    assert d.evidence["ratio"] == pytest.approx(960 / 813, abs=1e-4)


def test_thin_reconstruction_and_kv() -> None:
    assert thin_reconstruction(row(slice_thickness_mm=2.0)) is None  # the minimum is allowed
    assert thin_reconstruction(row(slice_thickness_mm=1.0)) is not None
    assert thin_reconstruction(row()) is None  # unknown thickness: no finding
    assert kv_not_calibrated(row(kvp=[120.0, 120.0])) is None
    f = kv_not_calibrated(row(kvp=[80.0, 140.0]))  # dual energy not matched to 120 kV
    assert f is not None and "80, 140 kV" in f.message


def test_dose_check_from_report_or_predicted_ctdivol() -> None:
    notif = dose_check_exceeded(row(dose_checks=[("notification", "notification (x)")]))
    assert notif is not None and notif.severity == "warning"
    both = [("notification", "n"), ("alert", "a")]
    alert = dose_check_exceeded(row(dose_checks=both))
    assert alert is not None and alert.severity == "alert"
    # predicted 60 mGy on a head protocol is below the 80 mGy head notification value
    assert dose_check_exceeded(row(ctdivol_mgy=60.0, phantom="head")) is None
    assert dose_check_exceeded(row(ctdivol_mgy=60.0, phantom="body")) is not None
    # a report's CTDIvol alone does not make a Dose Check finding
    assert dose_check_exceeded(row(ctdivol_mgy=60.0, input_kind="dose_report")) is None


def test_clean_acquisition_has_no_findings() -> None:
    assert acquisition_findings(row(slice_thickness_mm=2.5), result(0.0, 200.0)) == []


def test_repeat_and_multiphase_across_rows() -> None:
    rows = [
        row(contrast=False),
        row(contrast=False, lo=20.0, hi=180.0),
        row(contrast=True),
        row(contrast=None),  # a report without Procedure Context: no phase
    ]
    results = [result(0, 200), result(20, 180), result(0, 200), result(0, 200)]
    previous = [
        [(r.x_lo, r.x_hi, rows[j].contrast) for j, r in enumerate(results[:i])]
        for i in range(len(rows))
    ]
    out = study_findings(rows, results, previous)
    assert 0 not in out
    assert [f.code for f in out[1]] == ["repeat_acquisition"]
    assert [f.code for f in out[2]] == ["multiphase_contrast"]
    assert out[2][0].evidence["contrast_phases"] == 2
    # the fourth compares equal to no other contrast state: it is neither
    assert 3 not in out
    # 4DCT allows two acquisitions over one range
    lung4d = builtin_library().get("lung_4dct")
    pair = [row(protocol=lung4d, site="lung_4dct", contrast=False) for _ in range(2)]
    assert study_findings(pair, results[:2], [[], [(0.0, 200.0, False)]]) == {}


def test_proposal_scales_exposure_and_counts_savings() -> None:
    r = row(ctdivol_mgy=34.0, mas=300.0)
    # 17 / 34 = 0.5: mAs 300 -> 150
    assert exposure_scale(r) == pytest.approx(0.5)
    res = replace(result(-50.0, 250.0, c=34.0), proposal_dlp=17.0 * 22.0, dlp=34.0 * 30.0)
    p = build_proposal(r, res, exposure_scale(r))
    assert p.mas == pytest.approx(150.0)
    assert p.ctdivol_mgy == pytest.approx(17.0)
    # 34 x 30 - 17 x 22 = 1020 - 374 = 646 mGy.cm
    assert p.dlp_saving_mgy_cm == pytest.approx(646.0)
    assert any("CTDIvol 34.0 -> 17.0" in c for c in p.changes)
