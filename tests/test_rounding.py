"""Batch rounding (optimiser.rounding) gives exactly what ``round(float(x), n)`` gives."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from optimiser import batch
from optimiser.pipeline import Pipeline
from optimiser.proposal import exposure_scale
from optimiser.rounding import _round_matrix, round_exact, rounded_one, rounded_rows
from simulator import simulate_feed


def _adversarial(digits: int) -> np.ndarray:
    rng = np.random.default_rng(digits)
    scale = 10.0**digits
    k = rng.integers(-(10**7), 10**7, 4000).astype(np.float64)
    halves = (k + 0.5) / scale  # the decimal halves, as doubles (a few exact in binary)
    near = np.concatenate([np.nextafter(halves, np.inf), np.nextafter(halves, -np.inf)])
    binary_halves = np.arange(-64, 64) / 2.0 ** (digits + 1)  # exact halves in binary too
    spread = rng.standard_normal(4000) * 10.0 ** rng.integers(-8, 9, 4000)
    special = np.array(
        [0.0, -0.0, 1e-300, -1e-300, 2.675, 1.005, 0.125, 0.375, 1e15, 4.5e15, 1e16, 1e22,
         1e300, -1e300, 1.7976931348623157e308, math.inf, -math.inf, math.nan]
    )  # fmt: skip
    return np.concatenate([halves, near, binary_halves, spread, special])


@pytest.mark.parametrize("digits", [2, 3, 4, 5])
def test_round_exact_equals_round_value_for_value(digits: int) -> None:
    x = _adversarial(digits)
    got = round_exact(x, digits)
    want = [round(float(v), digits) for v in x]
    assert [repr(v) for v in got] == [repr(v) for v in want]


def test_a_matrix_rounds_each_row_to_its_own_digits() -> None:
    """The batch path rounds every column of a batch in one pass (rows of a matrix, each to
    its own decimals); values needing the fallback sit in every row, so a fallback written
    back to the wrong cell would show."""
    digits = (2, 5, 3, 4, 2)
    x = np.stack([_adversarial(d)[:3000] for d in digits])
    scale = (10.0 ** np.array(digits, np.float64)).reshape(-1, 1)
    got = _round_matrix(x, scale, digits)
    for i, d in enumerate(digits):
        assert [repr(v) for v in got[i]] == [repr(round(float(v), d)) for v in x[i]]


def test_the_fast_path_is_taken_and_would_differ_without_the_fallback() -> None:
    """Most values take np.rint; on near-halves it alone would differ from round (the
    fallback is what makes them equal, not luck in the data)."""
    x = _adversarial(4)
    with np.errstate(all="ignore"):
        naive = (np.rint(x * 1e4) / 1e4).tolist()
    want = [round(float(v), 4) for v in x]
    assert sum(repr(a) != repr(b) for a, b in zip(naive, want, strict=True)) > 10


def test_batch_rows_equal_the_one_row_twin() -> None:
    pipeline = Pipeline()
    rows = []
    for s in simulate_feed(30, seed=3):
        rows += pipeline.rows.event_rows(s.protocol_event)
    rows = [replace(row, unusable=batch.unusable(row)) for row in rows]
    run = batch.run(rows, pipeline.site_index, pipeline.tables, {})
    fast = rounded_rows(rows, run.out, run.scale)
    for row, res, rd in zip(rows, run.results, fast, strict=True):
        assert repr(rd) == repr(rounded_one(row, res, exposure_scale(row)))
