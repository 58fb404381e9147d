"""The z-profile dose kernel (CTDIvol following the tube current) against its twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimiser import reference
from optimiser.dose_model import site_tables
from optimiser.errors import InputError
from optimiser.kernels import COL, BatchInput, assess_batch
from optimiser.profile_kernel import PROFILE_COLUMNS, profile_batch, profile_from_images
from protocols.library import builtin_library

LIB = builtin_library()
TABLES = site_tables(LIB)
P = {name: i for i, name in enumerate(PROFILE_COLUMNS)}


def _site_rows(s: int) -> tuple[list[float], ...]:
    t = TABLES
    return tuple(
        getattr(t, name)[s].tolist()
        for name in ("inside_frac", "inside_k", "above_end", "above_k", "below_end", "below_k")
    )


def _twin(
    profiles: list[tuple[np.ndarray, np.ndarray]], n_lo: list[float], n_hi: list[float],
    site: list[int],
) -> np.ndarray:  # fmt: skip
    rows = []
    for (edges, values), lo, hi, s in zip(profiles, n_lo, n_hi, site, strict=True):
        rows.append(
            reference.profile_dose(
                edges[:-1].tolist(),
                edges[1:].tolist(),
                values.tolist(),
                lo,
                hi,
                _site_rows(s),  # type: ignore[arg-type]
            )
        )
    return np.array(rows).reshape(len(profiles), len(PROFILE_COLUMNS))


def test_hand_worked_two_slab_profile() -> None:
    # prostate, N = 0..200. Slabs: 150..250 at 20 mGy, 250..300 at 10 mGy.
    # DLP = 20 x 10 + 10 x 5 = 250 mGy.cm; excess 200..300 = 20 x 5 + 10 x 5 = 150 mGy.cm.
    # Excess E (abdomen 0.0153): 150 x 0.0153 = 2.295 mSv; inside 150..200 (pelvis 0.0129):
    # 20 x 5 x 0.0129 = 1.29 mSv, so E = 3.585 mSv.
    out = profile_batch(
        [(np.array([150.0, 250.0, 300.0]), np.array([20.0, 10.0]))],
        [0.0], [200.0], [LIB.site_index("prostate")], TABLES,
    )[0]  # fmt: skip
    assert out[P["dlp"]] == pytest.approx(250.0)
    assert out[P["excess_dlp"]] == pytest.approx(150.0)
    assert out[P["excess_effective_dose"]] == pytest.approx(2.295)
    assert out[P["effective_dose"]] == pytest.approx(3.585)
    assert out[P["excess_length"]] == pytest.approx(100.0)


def test_constant_profile_equals_the_batch_kernel() -> None:
    # A flat profile over X must give what the constant-CTDIvol kernel gives (1 cm slabs are
    # split at region boundaries in both, so the integrals are the same).
    rng = np.random.default_rng(3)
    n = 50
    b = BatchInput.empty(n)
    b.lo[:] = rng.uniform(-500, 500, n)
    b.hi[:] = b.lo + rng.uniform(0, 600, n)
    b.n_lo[:] = rng.uniform(-300, 300, n)
    b.n_hi[:] = b.n_lo + rng.uniform(0, 400, n)
    b.ctdivol_mgy[:] = rng.uniform(1, 30, n)
    b.site[:] = rng.integers(0, len(LIB.site_ids), n)
    flat = assess_batch(b, TABLES)
    profiles = [(np.linspace(b.lo[i], b.hi[i], 7), np.full(6, b.ctdivol_mgy[i])) for i in range(n)]
    prof = profile_batch(profiles, b.n_lo, b.n_hi, b.site, TABLES)
    for name, col in (("dlp", "dlp"), ("excess_dlp", "excess_dlp"),
                      ("effective_dose", "effective_dose"),
                      ("excess_effective_dose", "excess_effective_dose")):  # fmt: skip
        np.testing.assert_allclose(prof[:, P[name]], flat[:, COL[col]], rtol=1e-9, atol=1e-12)


def test_twin_agrees_on_seeded_profiles_and_edges() -> None:
    rng = np.random.default_rng(11)
    profiles: list[tuple[np.ndarray, np.ndarray]] = [
        (np.array([0.0]), np.array([])),  # empty profile
        (np.array([5.0, 5.0]), np.array([10.0])),  # zero-length slab
        (np.array([0.0, 100.0]), np.array([math.nan])),  # NaN CTDIvol: NaN row
        (np.array([-4.0e4, 4.0e4]), np.array([1.0e5])),  # extremes
        (np.array([500.0, 600.0, 700.0]), np.array([3.0, 4.0])),  # disjoint from N
    ]
    n_lo = [0.0, 0.0, 0.0, 0.0, 0.0]
    n_hi = [200.0, 200.0, 200.0, 200.0, 200.0]
    site = [0, 1, 2, 3, 4]
    for _ in range(60):
        k = int(rng.integers(1, 40))
        start = rng.uniform(-600, 400)
        edges = start + np.concatenate(([0.0], np.cumsum(rng.uniform(0.0, 15.0, k))))
        profiles.append((edges, rng.uniform(0, 40, k)))
        lo = rng.uniform(-300, 300)
        n_lo.append(lo)
        n_hi.append(lo + rng.uniform(0, 400))
        site.append(int(rng.integers(0, len(LIB.site_ids))))
    kernel = profile_batch(profiles, n_lo, n_hi, site, TABLES)
    np.testing.assert_allclose(kernel, _twin(profiles, n_lo, n_hi, site), rtol=1e-10, atol=1e-9)
    assert np.all(np.isnan(kernel[2]))
    assert kernel[0, P["dlp"]] == 0.0 and kernel[1, P["dlp"]] == 0.0


def test_profile_from_images_keeps_the_mean_ctdivol() -> None:
    # Images at z 0, 10, 20, 30 mm with tube currents 100, 200, 200, 100 mA: slabs 10 mm wide
    # (-5..35), length-weighted mean current 150 mA. Scaled to a mean CTDIvol of 12 mGy:
    # 8, 16, 16, 8 mGy, so DLP = 12 mGy x 4 cm = 48 mGy.cm as a flat 12 mGy would give.
    edges, ctdi = profile_from_images([30, 0, 10, 20], [100, 100, 200, 200], 12.0)
    np.testing.assert_allclose(edges, [-5, 5, 15, 25, 35])
    np.testing.assert_allclose(ctdi, [8, 16, 16, 8])
    assert float(np.sum(ctdi * np.diff(edges)) / 10) == pytest.approx(48.0)
    with pytest.raises(InputError, match="at least two images"):
        profile_from_images([0], [1], 1.0)
    with pytest.raises(InputError, match="all zero"):
        profile_from_images([0, 1], [0, 0], 1.0)


def test_bad_profiles_are_refused() -> None:
    with pytest.raises(InputError, match="n \\+ 1 slab edges"):
        profile_batch([(np.array([0.0, 1.0]), np.array([1.0, 2.0]))], [0.0], [1.0], [0], TABLES)
    with pytest.raises(InputError, match="ascend"):
        profile_batch([(np.array([1.0, 0.0]), np.array([1.0]))], [0.0], [1.0], [0], TABLES)
    with pytest.raises(InputError, match="site indices"):
        profile_batch([(np.array([0.0, 1.0]), np.array([1.0]))], [0.0], [1.0], [99], TABLES)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0.0, 50.0), min_size=1, max_size=30),
    st.lists(st.floats(0.0, 100.0), min_size=1, max_size=30),
    st.floats(-1000.0, 1000.0),
    st.floats(-1000.0, 1000.0),
    st.floats(0.0, 600.0),
    st.integers(0, 7),
)
def test_profile_excess_is_within_the_total(
    widths: list[float], values: list[float], start: float, n_lo: float, n_len: float, site: int
) -> None:
    k = min(len(widths), len(values))
    edges = start + np.concatenate(([0.0], np.cumsum(widths[:k])))
    out = profile_batch([(edges, np.array(values[:k]))], [n_lo], [n_lo + n_len], [site], TABLES)[0]
    slack = 1e-9 * max(1.0, out[P["dlp"]])
    assert 0.0 <= out[P["excess_dlp"]] <= out[P["dlp"]] + slack
    assert 0.0 <= out[P["excess_effective_dose"]] <= out[P["effective_dose"]] + slack
