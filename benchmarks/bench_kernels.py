"""Benchmarks of the optimiser kernels, each beside its baseline in the same run.

- ``assess_batch``: the numba batch kernel on simulated acquisitions (100,000; quick mode
  10,000) against its plain-Python twin (:mod:`optimiser.reference`) on fewer items; rates in
  acquisitions/s. Goal: >= 1e6/s and >= 50x the twin.
- ``water_equivalent_diameter``: the TG-220 kernel on 512 x 512 int16 slices against a single
  vectorised numpy pass over the same bytes (threshold and sum: the memory-bound floor); rates
  in slices/s. Goal: ratio >= 0.33 (within 3x of the floor).
- full mode only: batch time at 1k, 10k, 100k and 1M acquisitions and peak memory for 1M.
"""

from __future__ import annotations

import math
import time
import tracemalloc
from typing import Any

import numpy as np
import pytest

from benchmarks.conftest import Bench
from optimiser import reference
from optimiser.dose_model import site_tables
from optimiser.kernels import BatchInput, SiteTables, assess_batch
from optimiser.tg220 import water_equivalent_area
from protocols.library import builtin_library

TABLES = site_tables(builtin_library())
N_SITES = TABLES.overranging.shape[0]


def simulated_batch(n: int, seed: int = 4) -> BatchInput:
    """Planning acquisitions as a scanner feed sends them: 20-45 cm planned over 20-35 cm
    needed, offsets of a few cm, a mix of helical and axial, event and report rows."""
    rng = np.random.default_rng(seed)
    b = BatchInput.empty(n)
    centre = rng.uniform(-300, 300, n)
    needed = rng.uniform(200, 350, n)
    planned = needed + rng.uniform(-20, 150, n)
    shift = rng.normal(0, 30, n)
    b.n_lo[:] = centre - needed / 2
    b.n_hi[:] = centre + needed / 2
    b.lo[:] = centre + shift - planned / 2
    b.hi[:] = centre + shift + planned / 2
    b.is_planned[:] = rng.random(n) < 0.7
    b.helical[:] = rng.random(n) < 0.9
    b.collimation_mm[:] = rng.choice([np.nan, 19.2, 24.0, 40.0, 80.0], n)
    b.pitch[:] = rng.choice([0.6, 0.9, 1.0, 1.2], n)
    # report rows with a scanning length carry their real over-ranging
    b.overrange_mm[:] = np.where(rng.random(n) < 0.2, rng.uniform(20, 80, n), np.nan)
    b.ctdivol_mgy[:] = rng.uniform(5, 40, n)
    b.scale[:] = np.minimum(1.0, 17.0 / b.ctdivol_mgy)
    b.tolerance_mm[:] = 10.0
    b.site[:] = rng.integers(0, N_SITES, n)
    return b


def twin_batch(b: BatchInput, tables: SiteTables) -> np.ndarray:
    """The plain-Python twin over a batch: one ``assess_one`` call per acquisition."""
    return np.array(reference.assess_batch_twin(b, tables, 10.0))


def _quick(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("benchmark_quick"))


def _head(b: BatchInput, n: int) -> BatchInput:
    return BatchInput(*(getattr(b, f)[:n].copy() for f in BatchInput.__slots__))


def test_assess_batch_kernel(bench: Bench, request: pytest.FixtureRequest) -> None:
    n = 10_000 if _quick(request) else 100_000
    batch = simulated_batch(n)
    check = _head(batch, 200)
    np.testing.assert_allclose(assess_batch(check, TABLES), twin_batch(check, TABLES), rtol=1e-10)
    bench(assess_batch, batch, TABLES, subject="assess_batch", role="subject", items=n)


def test_assess_batch_twin(bench: Bench, request: pytest.FixtureRequest) -> None:
    n = 300 if _quick(request) else 3_000
    batch = _head(simulated_batch(100_000), n)
    np.testing.assert_allclose(twin_batch(batch, TABLES), assess_batch(batch, TABLES), rtol=1e-10)
    bench(twin_batch, batch, TABLES, subject="assess_batch", role="baseline", items=n, rounds=3)


def phantom_stack(n: int, size: int = 512, couch: bool = True, seed: int = 9) -> np.ndarray:
    """CT-like int16 slices (intercept -1024): an elliptical body with lungs, noise, and a
    couch below it separated by air; air outside the field is -1024 HU (raw 0)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    cy, cx = size * 0.45, size * 0.5
    body = ((yy - cy) / (size * 0.28)) ** 2 + ((xx - cx) / (size * 0.4)) ** 2 <= 1
    img = np.where(body, 1064, 24).astype(np.int16)  # soft tissue +40 HU, air -1000 HU
    if couch:
        lung_l = ((yy - cy) / (size * 0.15)) ** 2 + ((xx - cx + size * 0.17) / (size * 0.1)) ** 2
        lung_r = ((yy - cy) / (size * 0.15)) ** 2 + ((xx - cx - size * 0.17) / (size * 0.1)) ** 2
        img[(lung_l <= 1) | (lung_r <= 1)] = 174  # -850 HU
        img[int(size * 0.8) : int(size * 0.83), int(size * 0.1) : int(size * 0.9)] = 1324
    stack = np.empty((n, size, size), np.int16)
    for i in range(n):
        stack[i] = img + rng.integers(-15, 16, (size, size), dtype=np.int16)
    return stack


THRESHOLD_RAW = 524.0  # -500 HU with intercept -1024


def numpy_floor(stack: np.ndarray) -> np.ndarray:
    """One vectorised pass: sum of the pixels above the air threshold per slice."""
    return np.where(stack > THRESHOLD_RAW, stack, 0).sum(axis=(1, 2), dtype=np.int64)


def _kernel_raw(stack: np.ndarray) -> np.ndarray:
    r = water_equivalent_area(stack, slope=1.0, intercept=-1024.0, pixel_area_mm2=1.0)
    # back to the sum of raw values: A_w = (sum_raw - 1024 count) / 1000 + count
    return np.rint((r.area_mm2 - r.pixel_count) * 1000.0 + 1024.0 * r.pixel_count).astype(np.int64)


def test_water_equivalent_diameter_kernel(bench: Bench, request: pytest.FixtureRequest) -> None:
    n = 8 if _quick(request) else 64
    # On a body without couch and lungs the two computations agree exactly.
    plain = phantom_stack(2, couch=False)
    np.testing.assert_array_equal(_kernel_raw(plain), numpy_floor(plain))
    stack = phantom_stack(n)
    bench(_kernel_raw, stack, subject="water_equivalent_diameter", role="subject", items=n)


def test_water_equivalent_diameter_numpy_floor(
    bench: Bench, request: pytest.FixtureRequest
) -> None:
    n = 8 if _quick(request) else 64
    plain = phantom_stack(2, couch=False)
    np.testing.assert_array_equal(numpy_floor(plain), _kernel_raw(plain))
    stack = phantom_stack(n)
    bench(numpy_floor, stack, subject="water_equivalent_diameter", role="baseline", items=n)


@pytest.mark.slow
def test_assess_batch_scaling(benchmark: Any, request: pytest.FixtureRequest) -> None:
    if _quick(request) or not request.config.getoption("benchmark_full"):
        pytest.skip("scaling runs in full mode only (make bench)")
    assess_batch(simulated_batch(10), TABLES)  # compiled before timing
    timings: dict[str, float] = {}
    for n in (1_000, 10_000, 100_000, 1_000_000):
        batch = simulated_batch(n)
        best = min(_timed(assess_batch, batch, TABLES) for _ in range(3))
        timings[f"seconds_{n}"] = best
        timings[f"rate_{n}"] = n / best
    batch = simulated_batch(1_000_000)
    tracemalloc.start()
    assess_batch(batch, TABLES)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    inputs = sum(getattr(batch, f).nbytes for f in BatchInput.__slots__)
    timings["peak_traced_bytes_1m"] = float(peak)
    timings["input_bytes_1m"] = float(inputs)
    # Growth exponent from 1k to 1M acquisitions on a log-log scale: 1.0 means linear.
    timings["growth_exponent_1k_to_1m"] = math.log(
        timings["seconds_1000000"] / timings["seconds_1000"]
    ) / math.log(1000.0)
    # Recorded as a subject without baseline (no floor): the conftest writes its extra_info.
    benchmark.extra_info.update(
        {"subject": "assess_batch_scaling", "role": "subject", "items": 1_000_000, **timings}
    )
    benchmark.pedantic(assess_batch, args=(batch, TABLES), rounds=1, iterations=1)
    assert timings["rate_1000000"] > 0


def _timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start
