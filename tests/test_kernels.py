"""The batch kernel against its plain-Python twin, and its properties (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimiser import kernels, reference
from optimiser.dose_model import site_tables
from optimiser.errors import InputError
from optimiser.kernels import (
    COL,
    N_OUT,
    OUT_COLUMNS,
    OVERRANGING_PARAMS,
    BatchInput,
    RowResult,
    SiteTables,
    assess_batch,
    results_of,
)
from protocols.library import builtin_library

LIB = builtin_library()
TABLES = site_tables(LIB)
PROSTATE = LIB.site_index("prostate")


def _twin(batch: BatchInput, tables: SiteTables, slab_mm: float = 10.0) -> np.ndarray:
    rows = reference.assess_batch_twin(batch, tables, slab_mm)
    return np.array(rows, dtype=np.float64).reshape(len(batch), N_OUT)


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
    # known over-ranging, planned and irradiated-only; planned range missing N (proposal grows)
    {"lo": 0.0, "hi": 300.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 8.0, "is_planned": 1,
     "helical": 1, "collimation_mm": 80.0, "pitch": 1.5, "overrange_mm": 12.0},
    {"lo": 0.0, "hi": 30.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 8.0,
     "helical": 1, "collimation_mm": 80.0, "pitch": 1.5},
    {"lo": 60.0, "hi": 120.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 8.0, "is_planned": 1,
     "helical": 1, "collimation_mm": 40.0, "pitch": 0.09},
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
    b.pitch[:] = rng.choice([math.nan, 0.09, 0.5, 0.9, 1.0, 1.5], n)
    b.overrange_mm[:] = rng.choice([math.nan, math.nan, 0.0, 35.0, 120.0], n)
    b.dynamic_reduction[:] = rng.choice([math.nan, math.nan, 0.0, 0.3, 0.5], n)
    b.ctdivol_mgy[:] = rng.uniform(0, 80, n)
    b.scale[:] = rng.uniform(0.2, 1.0, n)
    b.tolerance_mm[:] = rng.uniform(0, 30, n)
    b.site[:] = rng.integers(0, len(LIB.site_ids), n)
    b.keep_range[:] = rng.integers(0, 2, n)
    for slab in (10.0, 2.5, 37.0):
        np.testing.assert_allclose(
            assess_batch(b, TABLES, slab), _twin(b, TABLES, slab), rtol=1e-10, atol=1e-9
        )


def test_empty_batch_gives_empty_output() -> None:
    assert assess_batch(BatchInput.empty(0), TABLES).shape == (0, N_OUT)


def test_absurd_table_positions_are_refused() -> None:
    batch = _batch([{"lo": 0.0, "hi": 5.0e6, "n_lo": 0.0, "n_hi": 1.0, "ctdivol_mgy": 1.0}])
    with pytest.raises(InputError, match="table position"):
        assess_batch(batch, TABLES)


def test_output_layout_is_pinned() -> None:
    # One owner: RowResult's field order is the kernel's column order; the named constants,
    # OUT_COLUMNS and the twin all follow it. Changing the layout must change this test.
    assert OUT_COLUMNS == (
        "x_lo", "x_hi", "dlp", "excess_length", "excess_dlp", "effective_dose",
        "excess_effective_dose", "planned_lo", "planned_hi", "avoidable_length",
        "avoidable_dlp", "avoidable_effective_dose", "overrange", "proposal_lo", "proposal_hi",
        "proposal_dlp", "proposal_effective_dose", "overrange_extrapolated",
    )  # fmt: skip
    for name, i in COL.items():
        assert getattr(kernels, name.upper()) == i
    # results_of maps each column to the field of that name.
    row = np.arange(N_OUT, dtype=np.float64)[None, :]
    [res] = results_of(row)
    assert [getattr(res, name) for name in OUT_COLUMNS] == list(range(N_OUT))
    assert isinstance(res, RowResult)
    assert TABLES.overranging.shape == (len(LIB.site_ids), len(OVERRANGING_PARAMS))


def test_overranging_model_hand_worked() -> None:
    # Defaults a = 0.94, b = 1.13 (van der Molen & Geleijns 2007, middle of four 16-slice
    # scanners): 24 mm at pitch 1.0 -> 24 x (0.94 + 1.13) = 49.68 mm; 20 mm at pitch 1.375 ->
    # 20 x (0.94 + 1.55375) = 49.875 mm: both inside the published 3.2-5.8 cm (chest).
    params = (0.94, 1.13, 45.0, 0.0)
    assert reference.overrange_mm(24.0, 1.0, True, *params) == pytest.approx(49.68)
    assert reference.overrange_mm(20.0, 1.375, True, *params) == pytest.approx(49.875)
    for w, p in ((24.0, 1.0), (20.0, 1.375), (24.0, 1.5), (20.0, 0.75)):
        assert 32.0 <= reference.overrange_mm(w, p, True, *params) <= 58.0 + 8.0
    # extra rotations n = b + a / p fall with pitch, within van der Molen's spread
    for p, (lo, hi) in ((0.5, (1.99, 4.04)), (1.5, (0.93, 2.59))):
        n_rot = reference.overrange_mm(24.0, p, True, *params) / (p * 24.0)
        assert lo <= n_rot <= hi
    # dynamic collimation removes its fraction; axial has none; unknown W takes the default
    assert reference.overrange_mm(24.0, 1.0, True, 0.94, 1.13, 45.0, 0.5) == pytest.approx(24.84)
    assert reference.overrange_mm(24.0, 1.0, False, *params) == 0.0
    assert reference.overrange_mm(math.nan, 1.0, True, *params) == 45.0
    assert reference.overrange_mm(24.0, math.nan, True, *params) == 45.0


def test_overranging_beyond_the_fitted_collimation_is_bounded_and_flagged() -> None:
    # Issue 20 defect 3: the fit covers 16-slice scanners (W <= 24 mm). Beyond, the part of W
    # past 24 mm is taken with the wide-beam bound 0.27 (Christner et al. 2010's smallest
    # saving): 80 mm at pitch 1 -> (24 + 56 x 0.73) x 2.07 = 134.3 mm (was 165.6 mm), 160 mm ->
    # (24 + 136 x 0.73) x 2.07 = 255.2 mm (was 331.2 mm). A scanner's own reduction replaces
    # the bound; within the fit nothing changes.
    over = LIB.get("breast").overranging
    assert (over.fitted_max_collimation_mm, over.wide_beam_reduction) == (24.0, 0.27)
    params = (0.94, 1.13, 45.0, 0.0, 24.0, 0.27)
    assert reference.overrange_mm(24.0, 1.0, True, *params) == pytest.approx(49.68)
    assert reference.overrange_mm(80.0, 1.0, True, *params) == pytest.approx(134.3016)
    assert reference.overrange_mm(160.0, 1.0, True, *params) == pytest.approx(255.1896)
    assert reference.overrange_extrapolated(80.0, 1.0, True, 24.0)
    assert not reference.overrange_extrapolated(24.0, 1.0, True, 24.0)
    assert not reference.overrange_extrapolated(80.0, 1.0, False, 24.0)  # axial
    assert not reference.overrange_extrapolated(math.nan, 1.0, True, 24.0)  # unknown: 45 mm
    rows = [
        {"lo": 0.0, "hi": 300.0, "n_lo": 0.0, "n_hi": 300.0, "ctdivol_mgy": 10.0,
         "is_planned": 1, "helical": 1, "collimation_mm": w, "pitch": 1.0, **extra}
        for w, extra in (
            (24.0, {}), (80.0, {}), (80.0, {"dynamic_reduction": 0.5}),
            (80.0, {"overrange_mm": 60.0}),
        )
    ]  # fmt: skip
    b = _batch(rows)
    out = assess_batch(b, TABLES)
    np.testing.assert_allclose(out, _twin(b, TABLES), rtol=1e-12, atol=1e-9)
    assert out[:, COL["overrange"]] == pytest.approx([49.68, 134.3016, 82.8, 60.0])
    # a known over-ranging (a report's DLP / CTDIvol minus its scanning length) is no model
    assert out[:, COL["overrange_extrapolated"]].tolist() == [0.0, 1.0, 1.0, 0.0]


def _model_grid(collimations: np.ndarray, pitches: np.ndarray, site: int) -> np.ndarray:
    """Kernel over-ranging on a collimation x pitch grid (planned zero-length helical rows)."""
    cc, pp = np.meshgrid(collimations, pitches, indexing="ij")
    n = cc.size
    b = BatchInput.empty(n)
    b.is_planned[:] = 1
    b.helical[:] = 1
    b.collimation_mm[:] = cc.ravel()
    b.pitch[:] = pp.ravel()
    b.n_hi[:] = 100.0
    b.ctdivol_mgy[:] = 10.0
    b.tolerance_mm[:] = 10.0
    b.site[:] = site
    out = assess_batch(b, TABLES)
    np.testing.assert_allclose(out, _twin(b, TABLES), rtol=1e-12, atol=1e-9)
    return out[:, COL["overrange"]].reshape(cc.shape)


def test_overranging_is_monotone_and_continuous_in_collimation_and_pitch() -> None:
    # Defect 3: the old model gave ~30 mm at 24 mm collimation and ~3 mm at 24.1 mm. The grid
    # crosses that step finely (0.1 mm) and runs from 1 mm to 160 mm wide-beam, pitch 0.05-2.
    collimations = np.concatenate((np.arange(1.0, 40.0, 0.1), np.arange(40.0, 160.01, 2.5)))
    pitches = np.concatenate((np.arange(0.05, 0.5, 0.01), np.arange(0.5, 2.0001, 0.05)))
    for site in range(len(LIB.site_ids)):
        over = _model_grid(collimations, pitches, site)
        assert np.all(np.diff(over, axis=0) >= 0.0), "not non-decreasing in collimation"
        assert np.all(np.diff(over, axis=1) >= 0.0), "not non-decreasing in pitch"
        # continuous: a 0.1 mm collimation step moves it by well under a millimetre
        fine = np.diff(over[: int(39.0 / 0.1)], axis=0)
        assert fine.max() < 1.0
    at_24 = _model_grid(np.array([23.9, 24.0, 24.1]), np.array([1.0]), 0)[:, 0]
    assert at_24[1] - at_24[0] == pytest.approx(0.1 * (0.94 + 1.13))
    # beyond the fitted 24 mm the slope is that of the wide-beam bound (0.73 of the fit's)
    assert at_24[2] - at_24[1] == pytest.approx(0.1 * (0.94 + 1.13) * (1 - 0.27))


def test_axial_rows_have_no_overranging() -> None:
    b = _batch(
        [{"lo": 0.0, "hi": 100.0, "n_lo": 0.0, "n_hi": 100.0, "ctdivol_mgy": 5.0,
          "is_planned": 1, "helical": 0, "collimation_mm": 160.0, "pitch": 1.0}]
    )  # fmt: skip
    out = assess_batch(b, TABLES)[0]
    assert out[COL["overrange"]] == 0.0 and out[COL["dlp"]] == pytest.approx(50.0)


def test_known_overranging_replaces_the_model_and_is_clipped() -> None:
    # A report row: irradiated 0..300, 40 mm over-ranging measured (DLP / CTDIvol - scanning
    # length): planned 20..280 whatever the model says. An irradiated-only row whose modelled
    # over-ranging (80 mm x 2.07 = 166 mm) exceeds its 100 mm length is clipped: P collapses
    # to the centre, X is kept.
    b = _batch([
        {"lo": 0.0, "hi": 300.0, "n_lo": 0.0, "n_hi": 300.0, "ctdivol_mgy": 10.0,
         "helical": 1, "collimation_mm": 80.0, "pitch": 1.0, "overrange_mm": 40.0},
        {"lo": 0.0, "hi": 100.0, "n_lo": 0.0, "n_hi": 100.0, "ctdivol_mgy": 10.0,
         "helical": 1, "collimation_mm": 80.0, "pitch": 1.0},
    ])  # fmt: skip
    out = assess_batch(b, TABLES)
    np.testing.assert_allclose(out, _twin(b, TABLES), rtol=1e-12)
    assert (out[0, COL["planned_lo"]], out[0, COL["planned_hi"]]) == (20.0, 280.0)
    assert out[0, COL["overrange"]] == 40.0
    assert out[1, COL["overrange"]] == 100.0
    assert out[1, COL["planned_lo"]] == out[1, COL["planned_hi"]] == 50.0
    assert out[1, COL["dlp"]] == pytest.approx(100.0)


def test_avoidable_excess_is_the_planned_range_beyond_n_plus_tolerance() -> None:
    # Prostate, N = 0..200, tolerance 10, planned -50..250 (helical 24 mm, pitch 1: 49.68 mm
    # over-ranging). Avoidable: 40 mm below and 40 mm above = 80 mm -> 16 x 8 = 128 mGy.cm.
    # Avoidable E: above 10..50 mm from N (abdomen 0.0153) 16 x 4 x 0.0153 = 0.9792; below
    # 10..50 mm (pelvis band, testes) 16 x 4 x 0.0129 = 0.8256 -> 1.8048 mSv.
    b = _batch([{"lo": -50.0, "hi": 250.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 16.0,
                 "is_planned": 1, "helical": 1, "collimation_mm": 24.0, "pitch": 1.0,
                 "site": PROSTATE, "tolerance_mm": 10.0}])  # fmt: skip
    out = assess_batch(b, TABLES)[0]
    assert out[COL["avoidable_length"]] == pytest.approx(80.0)
    assert out[COL["avoidable_dlp"]] == pytest.approx(128.0)
    assert out[COL["avoidable_effective_dose"]] == pytest.approx(1.8048)
    # Planned exactly on N +- tolerance: nothing avoidable, over-ranging still excess.
    b.lo[0], b.hi[0] = -10.0, 210.0
    out = assess_batch(b, TABLES)[0]
    assert out[COL["avoidable_length"]] == 0.0 and out[COL["avoidable_dlp"]] == 0.0
    assert out[COL["excess_length"]] == pytest.approx(20.0 + 49.68)


def test_band_below_a_pelvic_n_is_costed_with_the_pelvis_k() -> None:
    # severity rule 12: the band directly inferior to a pelvic N holds the testes (ICRP 103 w_T
    # 0.08): 50 mm below N at 10 mGy costs 10 x 5 x 0.0129 (pelvis), never 0.0008 (legs).
    for site in ("prostate", "prostate_nodes"):
        b = _batch([{"lo": -50.0, "hi": 0.0, "n_lo": 0.0, "n_hi": 200.0, "ctdivol_mgy": 10.0,
                     "site": LIB.site_index(site)}])  # fmt: skip
        out = assess_batch(b, TABLES)[0]
        assert out[COL["excess_effective_dose"]] == pytest.approx(10 * 5 * 0.0129), site
        assert TABLES.below_k[LIB.site_index(site), 0] >= LIB.k("pelvis")


# --- properties ----------------------------------------------------------------------------------

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


# --- proposal (severity rule 3, defect 2) --------------------------------------------------------

collimation = st.sampled_from([math.nan, 5.0, 19.2, 24.0, 38.4, 40.0, 80.0, 160.0])
pitch = st.sampled_from([math.nan, 0.09, 0.5, 0.8, 1.0, 1.375, 1.5])
known = st.one_of(st.just(math.nan), st.floats(0.0, 300.0, allow_nan=False))


def _proposal_row(
    lo: float, ln: float, n_lo: float, n_ln: float, planned: int, w: float, p: float,
    over: float, tol: float, site: int,
) -> BatchInput:  # fmt: skip
    return _batch(
        [{"lo": lo, "hi": lo + ln, "n_lo": n_lo, "n_hi": n_lo + n_ln, "ctdivol_mgy": 12.0,
          "is_planned": planned, "helical": 1, "collimation_mm": w, "pitch": p,
          "overrange_mm": over, "site": site, "tolerance_mm": tol, "scale": 0.8}]
    )  # fmt: skip


@PROPS
@given(z, length, z, length, st.integers(0, 1), collimation, pitch, known,
       st.floats(0.0, 30.0), st.integers(0, 7))  # fmt: skip
def test_proposal_contains_n_and_reassesses_clean(
    lo: float, ln: float, n_lo: float, n_ln: float, planned: int, w: float, p: float,
    over: float, tol: float, site: int,
) -> None:  # fmt: skip
    b = _proposal_row(lo, ln, n_lo, n_ln, planned, w, p, over, tol, site)
    out = assess_batch(b, TABLES)[0]
    twin = _twin(b, TABLES)[0]
    np.testing.assert_allclose(out, twin, rtol=1e-10, atol=1e-9)
    for res in (out, twin):
        q_lo, q_hi = res[COL["proposal_lo"]], res[COL["proposal_hi"]]
        # contains N, passes it by at most the tolerance
        assert q_lo <= n_lo and q_hi >= n_lo + n_ln
        assert q_lo >= n_lo - tol and q_hi <= n_lo + n_ln + tol
    # Re-assessed as a protocol event planned on the proposal with the proposed CTDIvol:
    # nothing avoidable, so excess_coverage can at most be info.
    again = _batch(
        [{"lo": out[COL["proposal_lo"]], "hi": out[COL["proposal_hi"]], "n_lo": n_lo,
          "n_hi": n_lo + n_ln, "ctdivol_mgy": 12.0 * 0.8, "is_planned": 1, "helical": 1,
          "collimation_mm": w, "pitch": p, "site": site, "tolerance_mm": tol}]
    )  # fmt: skip
    for res in (assess_batch(again, TABLES)[0], _twin(again, TABLES)[0]):
        assert res[COL["avoidable_length"]] == 0.0
        assert res[COL["avoidable_dlp"]] == 0.0
        assert res[COL["proposal_lo"]] == out[COL["proposal_lo"]]
        assert res[COL["proposal_hi"]] == out[COL["proposal_hi"]]


def test_a_kept_range_is_proposed_as_planned_and_saves_only_exposure() -> None:
    """keep_range (an acquisition of its own dose class): the proposal is the planned range,
    whatever N; with scale 1 its DLP is the acquisition's own (nothing added, nothing saved)."""
    rows = [
        {"lo": 0.0, "hi": 10.0, "n_lo": -200.0, "n_hi": 150.0, "ctdivol_mgy": 8.0},
        {"lo": 300.0, "hi": 320.0, "n_lo": -200.0, "n_hi": 150.0, "ctdivol_mgy": 8.0},
    ]
    kept = _batch([{**r, "keep_range": 1, "is_planned": 1} for r in rows])
    free = _batch([{**r, "is_planned": 1} for r in rows])
    out, moved = assess_batch(kept, TABLES), assess_batch(free, TABLES)
    np.testing.assert_allclose(out, _twin(kept, TABLES), rtol=1e-12, atol=1e-9)
    for i, r in enumerate(rows):
        assert (out[i, COL["proposal_lo"]], out[i, COL["proposal_hi"]]) == (r["lo"], r["hi"])
        assert out[i, COL["proposal_dlp"]] == out[i, COL["dlp"]]
    # Without it the 10 mm level would be stretched over N (the defect: dose added).
    assert moved[0, COL["proposal_dlp"]] > moved[0, COL["dlp"]]
