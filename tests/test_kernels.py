"""The batch kernel against its plain-Python twin, and its properties (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimiser import reference
from optimiser.dose_model import site_tables
from optimiser.errors import InputError
from optimiser.kernels import COL, BatchInput, SiteTables, assess_batch
from protocols.library import builtin_library

LIB = builtin_library()
TABLES = site_tables(LIB)
PROSTATE = LIB.site_index("prostate")


def _twin(batch: BatchInput, tables: SiteTables, slab_mm: float = 10.0) -> np.ndarray:
    rows = []
    for i in range(len(batch)):
        s = int(batch.site[i])
        lo, hi = sorted((float(batch.lo[i]), float(batch.hi[i])))
        if math.isnan(batch.lo[i]) or math.isnan(batch.hi[i]):
            lo, hi = float(batch.lo[i]), float(batch.hi[i])
        n_lo, n_hi = sorted((float(batch.n_lo[i]), float(batch.n_hi[i])))
        if math.isnan(batch.n_lo[i]) or math.isnan(batch.n_hi[i]):
            n_lo, n_hi = float(batch.n_lo[i]), float(batch.n_hi[i])
        site_rows = (
            list(tables.inside_frac[s]),
            list(tables.inside_k[s]),
            list(tables.above_end[s]),
            list(tables.above_k[s]),
            list(tables.below_end[s]),
            list(tables.below_k[s]),
        )
        rows.append(
            reference.assess_one(
                lo,
                hi,
                bool(batch.is_planned[i]),
                bool(batch.helical[i]),
                float(batch.collimation_mm[i]),
                float(batch.pitch[i]),
                n_lo,
                n_hi,
                float(batch.ctdivol_mgy[i]),
                float(batch.scale[i]),
                float(batch.tolerance_mm[i]),
                list(tables.overranging[s]),
                site_rows,
                slab_mm,
            )
        )
    return np.array(rows, dtype=np.float64).reshape(len(batch), reference.N_OUT)


def _batch(rows: list[dict[str, float]]) -> BatchInput:
    b = BatchInput.empty(len(rows))
    for i, r in enumerate(rows):
        for key, value in r.items():
            getattr(b, key)[i] = value
    return b


EDGE_CASES: list[dict[str, float]] = [
    # empty range: zero-length scan at the centre of N
    {"lo": 100.0, "hi": 100.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 10.0},
    # zero-length helical planned range: over-ranging alone is irradiated
    {"lo": 50.0, "hi": 50.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 10.0, "is_planned": 1,
     "helical": 1, "collimation_mm": 40.0, "pitch": 0.9},
    # N inside X
    {"lo": -100.0, "hi": 400.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 16.0},
    # X inside N
    {"lo": 20.0, "hi": 120.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 16.0},
    # disjoint, above and below
    {"lo": 500.0, "hi": 700.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 16.0},
    {"lo": -900.0, "hi": -300.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 16.0},
    # reversed order of ends
    {"lo": 250.0, "hi": -50.0, "n_lo": 200.0, "n_hi": 0.0, "ctdivol_mgy": 16.0, "is_planned": 1,
     "helical": 1, "collimation_mm": 24.0, "pitch": 1.0},
    # empty needed range
    {"lo": -50.0, "hi": 250.0, "n_lo": 100.0, "n_hi": 100.0, "ctdivol_mgy": 16.0},
    # NaN inputs give a NaN row; NaN collimation falls back to the default over-ranging
    {"lo": math.nan, "hi": 250.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 16.0},
    {"lo": 0.0, "hi": 250.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": math.nan},
    {"lo": 0.0, "hi": 250.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 5.0, "is_planned": 1,
     "helical": 1, "collimation_mm": math.nan, "pitch": 1.0},
    # extremes: 100 m of table, huge and tiny CTDIvol, sub-micron ranges
    {"lo": -5.0e4, "hi": 5.0e4, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 1.0e6},
    {"lo": 0.0, "hi": 1.0e-9, "n_lo": 0.0, "n_hi": 1.0e-9, "ctdivol_mgy": 1.0e-300},
    {"lo": 199.999, "hi": 200.001, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 1.0},
    # wide detector: over-ranging not clamped to the 16-slice bounds
    {"lo": 0.0, "hi": 300.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 8.0, "is_planned": 1,
     "helical": 1, "collimation_mm": 80.0, "pitch": 1.5},
]  # fmt: skip


def test_twin_agrees_on_edge_cases_for_every_site() -> None:
    for site in range(len(LIB.site_ids)):
        rows = [dict(r, site=site, tolerance_mm=10.0) for r in EDGE_CASES]
        batch = _batch(rows)
        np.testing.assert_allclose(
            assess_batch(batch, TABLES), _twin(batch, TABLES), rtol=1e-12, atol=1e-9
        )


def test_twin_agrees_on_seeded_random_batches() -> None:
    rng = np.random.default_rng(20261126)
    n = 400
    b = BatchInput.empty(n)
    b.lo[:] = rng.uniform(-800, 800, n)
    b.hi[:] = b.lo + rng.choice([0.0, 1.0, 50.0, 300.0, 900.0], n) * rng.uniform(0, 1.5, n)
    b.n_lo[:] = rng.uniform(-400, 400, n)
    b.n_hi[:] = b.n_lo + rng.uniform(0, 450, n)
    b.is_planned[:] = rng.integers(0, 2, n)
    b.helical[:] = rng.integers(0, 2, n)
    b.collimation_mm[:] = rng.choice([math.nan, 10.0, 20.0, 40.0, 80.0, 160.0], n)
    b.pitch[:] = rng.choice([math.nan, 0.5, 0.9, 1.0, 1.5], n)
    b.ctdivol_mgy[:] = rng.uniform(0, 80, n)
    b.scale[:] = rng.uniform(0.2, 1.0, n)
    b.tolerance_mm[:] = rng.uniform(0, 30, n)
    b.site[:] = rng.integers(0, len(LIB.site_ids), n)
    for slab in (10.0, 2.5, 37.0):
        np.testing.assert_allclose(
            assess_batch(b, TABLES, slab), _twin(b, TABLES, slab), rtol=1e-10, atol=1e-9
        )


def test_empty_batch_gives_empty_output() -> None:
    assert assess_batch(BatchInput.empty(0), TABLES).shape == (0, reference.N_OUT)


def test_absurd_table_positions_are_refused() -> None:
    batch = _batch([{"lo": 0.0, "hi": 5.0e6, "n_lo": 0.0, "n_hi": 1.0, "ctdivol_mgy": 1.0}])
    with pytest.raises(InputError, match="table position"):
        assess_batch(batch, TABLES)


def test_overrange_bounds_for_a_16_slice_collimation() -> None:
    # 1.5 x pitch 1.0 x 24 mm = 36 mm, inside the published 30-60 mm; pitch 0.5 gives 18 mm,
    # raised to the 30 mm lower bound; pitch 2 gives 72 mm, capped at 60 mm.
    params = (1.5, 45.0, 24.0, 30.0, 60.0)
    assert reference.overrange_mm(24.0, 1.0, True, *params) == pytest.approx(36.0)
    assert reference.overrange_mm(24.0, 0.5, True, *params) == pytest.approx(30.0)
    assert reference.overrange_mm(24.0, 2.0, True, *params) == pytest.approx(60.0)
    # 80 mm detector, pitch 1: 1.5 x 80 = 120 mm, wider detectors over-range more (unbounded).
    assert reference.overrange_mm(80.0, 1.0, True, *params) == pytest.approx(120.0)
    assert reference.overrange_mm(24.0, 1.0, False, *params) == 0.0
    assert reference.overrange_mm(math.nan, 1.0, True, *params) == 45.0


# --- properties -------------------------------------------------------------------------------

z = st.floats(-2000.0, 2000.0, allow_nan=False)
length = st.floats(0.0, 1500.0, allow_nan=False)
ctdi = st.floats(0.0, 200.0, allow_nan=False)
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _one(
    lo: float, hi: float, n_lo: float, n_hi: float, c: float, planned: int = 0, site: int = 0
) -> np.ndarray:
    batch = _batch(
        [{"lo": lo, "hi": hi, "n_lo": n_lo, "n_hi": n_hi, "ctdivol_mgy": c,
          "is_planned": planned, "helical": planned, "collimation_mm": 40.0, "pitch": 1.0,
          "site": site, "tolerance_mm": 10.0}]
    )  # fmt: skip
    out: np.ndarray = assess_batch(batch, TABLES)[0]
    return out


@PROPS
@given(z, length, z, length, ctdi, st.integers(0, 1), st.integers(0, 7))
def test_excess_is_never_negative_nor_above_the_total(
    lo: float, ln: float, n_lo: float, n_ln: float, c: float, planned: int, site: int
) -> None:
    out = _one(lo, lo + ln, n_lo, n_lo + n_ln, c, planned, site)
    tol = 1e-9 * max(1.0, out[COL["dlp"]])
    assert out[COL["excess_dlp"]] >= 0.0
    assert out[COL["excess_dlp"]] <= out[COL["dlp"]] + tol
    assert out[COL["excess_effective_dose"]] >= 0.0
    assert out[COL["excess_effective_dose"]] <= out[COL["effective_dose"]] + tol
    assert 0.0 <= out[COL["excess_length"]] <= out[COL["x_hi"]] - out[COL["x_lo"]] + 1e-9


@PROPS
@given(z, length, st.floats(0.0, 1.0), st.floats(0.0, 1.0), ctdi, st.integers(0, 7))
def test_excess_is_zero_when_x_lies_inside_n(
    n_lo: float, n_ln: float, a: float, b: float, c: float, site: int
) -> None:
    lo, hi = sorted((n_lo + a * n_ln, n_lo + b * n_ln))
    out = _one(lo, hi, n_lo, n_lo + n_ln, c, 0, site)
    assert out[COL["excess_length"]] == pytest.approx(0.0, abs=1e-9)
    assert out[COL["excess_dlp"]] == pytest.approx(0.0, abs=1e-9)
    assert out[COL["excess_effective_dose"]] == pytest.approx(0.0, abs=1e-9)


@PROPS
@given(z, length, length, z, length, ctdi, st.integers(0, 1), st.integers(0, 7))
def test_excess_is_monotone_in_the_scan_length(
    lo: float, ln: float, extra: float, n_lo: float, n_ln: float, c: float, planned: int, site: int
) -> None:
    short = _one(lo, lo + ln, n_lo, n_lo + n_ln, c, planned, site)
    longer = _one(lo, lo + ln + extra, n_lo, n_lo + n_ln, c, planned, site)
    longer_down = _one(lo - extra, lo + ln, n_lo, n_lo + n_ln, c, planned, site)
    for other in (longer, longer_down):
        assert other[COL["excess_length"]] >= short[COL["excess_length"]] - 1e-9
        assert other[COL["excess_dlp"]] >= short[COL["excess_dlp"]] - 1e-9
        assert other[COL["excess_effective_dose"]] >= short[COL["excess_effective_dose"]] - 1e-9
