"""Rows whose numbers cannot be modelled are told apart (batch.unusable) and reported, never
assessed: every absurd value is named."""

from __future__ import annotations

import math

import pytest

from optimiser import batch
from optimiser.dicom import read_dose_report
from optimiser.pipeline import Pipeline
from optimiser.records import DoseReport
from simulator import simulate_feed

BAD = {
    "top_z_mm": (1e7, "z range high end = 10000000.0 mm is not a table position"),
    "bottom_z_mm": (-math.inf, "z range low end = -inf mm is not a table position"),
    "mean_ctdivol_mgy": (1e6, "CTDIvol = 1000000.0 mGy is outside 0..100000 mGy"),
    "pitch_factor": (math.inf, "pitch = inf is not finite"),
    "nominal_total_collimation_mm": (math.nan, "total collimation = nan is not finite"),
}


def _report(field: str | None = None, value: float = 0.0) -> tuple[Pipeline, DoseReport]:
    study = simulate_feed(1, seed=4)[0]
    report = read_dose_report(study.rdsr_bytes, source="r.dcm")
    spiral = next(a for a in report.acquisitions if a.acquisition_type == "spiral")
    if field == "mean_ctdivol_mgy":
        spiral.dlp_mgy_cm = None
    if field is not None:
        setattr(spiral, field, value)
    return Pipeline(), report


def test_a_plain_report_has_no_unusable_row() -> None:
    pipeline, report = _report()
    rows = pipeline.rows.report_rows(report)
    assert rows and all(batch.unusable(r) is None for r in rows)


@pytest.mark.parametrize("field", sorted(BAD))
def test_each_absurd_value_is_named_and_not_modelled(field: str) -> None:
    value, reason = BAD[field]
    pipeline, report = _report(field, value)
    rows = pipeline.rows.report_rows(report)
    reasons = [batch.unusable(r) for r in rows]
    assert sum(1 for r in reasons if r is not None and r.startswith(reason)) == 1
    out = Pipeline().process([report])
    bad = [a for a in out if any(n.startswith(f"not modelled: {reason}") for n in a.notes)]
    assert len(bad) == 1 and bad[0].proposal is None and bad[0].findings == []
