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
           overrange: float = 0.0) -> RowResult:  # fmt: skip
    """Kernel outputs worked by hand for a constant CTDIvol, effective dose left at zero."""
    length = x_hi - x_lo
    inside = max(0.0, min(x_hi, n[1]) - max(x_lo, n[0]))
    excess = length - inside
    return RowResult(
        x_lo, x_hi, c * length / 10, excess, c * excess / 10, 0.0, 0.0,
        max(x_lo, n[0] - 10), min(x_hi, n[1] + 10), c * inside / 10, 0.0, overrange,
    )  # fmt: skip


def test_every_code_is_a_contract_code() -> None:
    assert len(FINDING_CODES) == 9


@pytest.mark.parametrize(
    ("x", "severity"),
    [
        ((0.0, 205.0), None),  # 5 mm excess: below the 10 mm info threshold
        ((0.0, 215.0), "info"),  # 15 / 215 = 7% < 10%
        ((0.0, 240.0), "warning"),  # 40 / 240 = 16.7%: >= 10%, < 25%
        ((-50.0, 250.0), "alert"),  # 100 / 300 = 33%: >= 25%
    ],
)
def test_excess_coverage_severity(x: tuple[float, float], severity: str | None) -> None:
    f = excess_coverage(row(), result(*x))
    assert (f.severity if f else None) == severity
    if f is not None:
        assert f.evidence["excess_length_mm"] == pytest.approx(x[1] - x[0] - 200.0)


def test_excess_coverage_message_has_the_numbers_and_the_bound() -> None:
    # 100 mm outside N at 10 mGy: 10 x 10.0 = 100 mGy.cm, 100 / 300 = 33%
    f = excess_coverage(row(excess_is_lower_bound=True), result(-50.0, 250.0))
    assert f is not None
    assert "100 mm of the 300 mm" in f.message
    assert "at least 100.0 mGy.cm (33% of the DLP)" in f.message


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
    # rows carry only the report's exceedances (rows._dose_checks): counted by kind
    exceeded = "notification: CTDIvol forward estimate 55 mGy >= notification value 50 mGy"
    notif = dose_check_exceeded(row(dose_checks=[("notification", exceeded)]))
    assert notif is not None and notif.severity == "warning"
    assert "0 alerts and 1 notification exceeded" in notif.message and exceeded in notif.message
    both = [("notification", "n"), ("alert", "a"), ("alert", "b")]
    alert = dose_check_exceeded(row(dose_checks=both))
    assert alert is not None and alert.severity == "alert"
    assert "2 alerts and 1 notification" in alert.message
    assert (alert.evidence["alerts"], alert.evidence["notifications"]) == (2, 1)
    # predicted 60 mGy on a head protocol is below the 80 mGy head notification value
    assert dose_check_exceeded(row(ctdivol_mgy=60.0, phantom="head")) is None
    assert dose_check_exceeded(row(ctdivol_mgy=60.0, phantom="body")) is not None
    # a report's CTDIvol alone does not make a Dose Check finding
    assert dose_check_exceeded(row(ctdivol_mgy=60.0, input_kind="dose_report")) is None


def test_clean_acquisition_has_no_findings() -> None:
    assert acquisition_findings(row(slice_thickness_mm=2.5), result(0.0, 200.0)) == []


def _cross(phases: list[Any], ranges: list[tuple[float, float]] | None = None,
           **kw: Any) -> dict[int, list[Any]]:  # fmt: skip
    """study_findings over rows in order, each compared with all earlier ones."""
    ranges = ranges or [(0.0, 200.0)] * len(phases)
    rows = [row(contrast=p, lo=lo, hi=hi, **kw) for p, (lo, hi) in zip(phases, ranges, strict=True)]
    results = [result(lo, hi) for lo, hi in ranges]
    previous = [
        [(r.x_lo, r.x_hi, rows[j].contrast) for j, r in enumerate(results[:i])]
        for i in range(len(rows))
    ]
    return study_findings(rows, results, previous)


def _codes(out: dict[int, list[Any]]) -> dict[int, list[str]]:
    return {i: [f.code for f in found] for i, found in out.items()}


def test_repeat_and_multiphase_across_rows() -> None:
    out = _cross(["none", "none", "with", None], [(0, 200), (20, 180), (0, 200), (0, 200)])
    assert _codes(out) == {1: ["repeat_acquisition"], 2: ["multiphase_contrast"]}
    # phases = 1 enhanced + 1 (any non-contrast) = 2
    assert out[2][0].evidence["contrast_phases"] == 2
    # 4DCT allows two acquisitions over one range
    lung4d = builtin_library().get("lung_4dct")
    assert _cross(["none", "none"], protocol=lung4d, site="lung_4dct") == {}


@pytest.mark.parametrize(
    ("phases", "expected"),
    [
        # two enhanced phases over one range: multiphase, never a repeat (issue 9 defect 5)
        (["arterial", "portal_venous"], {1: ["multiphase_contrast"]}),
        (["with", "with"], {1: ["multiphase_contrast"]}),  # RDSR "with contrast" twice
        (["portal_venous", "portal_venous"], {1: ["multiphase_contrast"]}),
        # a non-contrast pair plus contrast (planning-ct.md section 8)
        (["none", "with"], {1: ["multiphase_contrast"]}),
        (["with", "none"], {1: ["multiphase_contrast"]}),
        (["none", "arterial", "portal_venous"],
         {1: ["multiphase_contrast"], 2: ["multiphase_contrast"]}),
        # the third repeats the non-contrast acquisition: a repeat, not another phase
        (["none", "with", "none"], {1: ["multiphase_contrast"], 2: ["repeat_acquisition"]}),
        (["none", "none"], {1: ["repeat_acquisition"]}),
        ([None, None], {1: ["repeat_acquisition"]}),  # two of unknown phase
        # unknown compares with nothing but unknown
        ([None, "none"], {}),
        (["with", None], {}),
        # one phase over the range: the planning norm
        (["with"], {}),
        (["none"], {}),
    ],
)  # fmt: skip
def test_contrast_phases_over_one_range(phases: list[Any], expected: dict[int, list[str]]) -> None:
    assert _codes(_cross(phases)) == expected


def test_multiphase_message_names_the_phases() -> None:
    out = _cross(["none", "arterial", "portal_venous"])
    f = out[2][0]
    assert f.severity == "warning"
    assert f.evidence["contrast_phases"] == 3
    assert "3 contrast phases" in f.message
    assert "non-contrast, arterial, portal venous" in f.message
    assert "this portal venous acquisition" in f.message


def test_phases_on_separate_ranges_are_not_counted_together() -> None:
    # arterial over the chest, portal venous over the pelvis: one phase per range
    assert _cross(["arterial", "portal_venous"], [(0, 200), (400, 600)]) == {}


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
