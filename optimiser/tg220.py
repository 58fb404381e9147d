"""TG-220 water-equivalent area of CT slices: a numba kernel and its validating wrapper.

AAPM Report 220 (2014), ../shared/reference/planning-ct.md section 6: A_w = sum over the
patient's pixels of (HU / 1000 + 1) x pixel area, D_w = 2 sqrt(A_w / pi); the patient excludes
the couch and air, and a truncated outline must be flagged. The plain-Python twin is
:func:`optimiser.reference.water_equivalent_area`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from optimiser.errors import InputError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]


@njit(cache=True, nogil=True)
def _find(parent: I64, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True)
def _wed_slice(img: npt.NDArray[np.int16], threshold: int) -> tuple[int, int, bool]:
    # Runs of above-threshold pixels per row, joined across rows by union-find: the patient is
    # the largest 4-connected region, which leaves the couch (separated by air) out. One pass
    # over the pixels: a running row sum is kept at every run boundary, so the sum over any
    # span between boundaries is a difference of two stored values.
    rows, cols = img.shape
    cap = rows * ((cols + 1) // 2) + 1
    run_row = np.empty(cap, np.int64)
    run_start = np.empty(cap, np.int64)
    run_end = np.empty(cap, np.int64)  # exclusive
    cum_start = np.empty(cap, np.int64)  # row sum of the pixels before the run
    cum_end = np.empty(cap, np.int64)  # row sum of the pixels up to the run's end
    row_first = np.empty(rows + 1, np.int64)
    n = 0
    for r in range(rows):
        row_first[r] = n
        inrun = False
        acc = 0
        for c in range(cols):
            v = int(img[r, c])
            above = v > threshold
            if above != inrun:
                if above:
                    run_row[n] = r
                    run_start[n] = c
                    cum_start[n] = acc
                else:
                    run_end[n] = c
                    cum_end[n] = acc
                    n += 1
                inrun = above
            acc += v
        if inrun:
            run_end[n] = cols
            cum_end[n] = acc
            n += 1
    row_first[rows] = n
    if n == 0:
        return 0, 0, False
    parent = np.arange(n)
    for r in range(1, rows):
        a = row_first[r - 1]
        a_end = row_first[r]
        b = row_first[r]
        b_end = row_first[r + 1]
        while a < a_end and b < b_end:
            if run_start[a] < run_end[b] and run_start[b] < run_end[a]:
                ra = _find(parent, a)
                rb = _find(parent, b)
                # The smaller index stays root: the root is the region's first pixel in raster
                # order, which makes ties resolve as in the reference twin.
                if ra < rb:
                    parent[rb] = ra
                elif rb < ra:
                    parent[ra] = rb
            if run_end[a] < run_end[b]:
                a += 1
            else:
                b += 1
    count = np.zeros(n, np.int64)
    trunc = np.zeros(n, np.bool_)
    for k in range(n):
        root = _find(parent, k)
        count[root] += run_end[k] - run_start[k]
        if run_start[k] == 0 or run_end[k] == cols or run_row[k] == 0 or run_row[k] == rows - 1:
            trunc[root] = True
    best = 0
    for k in range(1, n):
        if count[k] > count[best]:
            best = k
    # Each row of the patient is taken from its first to its last pixel: lungs and bowel gas
    # inside the outline count with their (small) weight, air in a concavity with weight ~0.
    # Runs of a row come in column order, so its first and last patient runs bound the span.
    total = 0
    pixels = 0
    for r in range(rows):
        first = -1
        last = -1
        for k in range(row_first[r], row_first[r + 1]):
            if _find(parent, k) == best:
                if first < 0:
                    first = k
                last = k
        if first >= 0:
            pixels += run_end[last] - run_start[first]
            total += cum_end[last] - cum_start[first]
    return total, pixels, trunc[best]


@njit(cache=True, nogil=True)
def _wed_stack(
    stack: npt.NDArray[np.int16], threshold: int, sums: I64, counts: I64, trunc: I8
) -> None:
    for i in range(stack.shape[0]):
        s, c, t = _wed_slice(stack[i], threshold)
        sums[i] = s
        counts[i] = c
        trunc[i] = 1 if t else 0


@dataclass(frozen=True, slots=True)
class WaterEquivalent:
    """Per-slice TG-220 results of :func:`water_equivalent_area`."""

    area_mm2: F64
    diameter_mm: F64
    pixel_count: I64
    truncated: npt.NDArray[np.bool_]


def water_equivalent_area(
    stack: npt.ArrayLike,
    *,
    slope: float,
    intercept: float,
    pixel_area_mm2: float,
    threshold_hu: float = -500.0,
) -> WaterEquivalent:
    """TG-220 A_w and D_w = 2 sqrt(A_w / pi) of each slice of an int16 stack (or one slice).

    The patient is the largest 4-connected region above ``threshold_hu`` (the couch, separated
    by air, is left out), each of its rows filled from its first to its last pixel so that lungs
    inside the outline count; it is flagged truncated when it touches the image edge (AAPM
    Report 220; planning-ct.md section 6). ``pixel_count`` counts the filled pixels.
    """
    arr = np.asarray(stack)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3 or arr.dtype.kind not in "iu":
        raise InputError(
            f"pixel data of shape {arr.shape} and dtype {arr.dtype}: need integer slices "
            "(rows x columns, or a stack of them) as stored in the CT image"
        )
    if not slope > 0 or not pixel_area_mm2 > 0:
        raise InputError(
            f"Rescale Slope = {slope!r}, pixel area = {pixel_area_mm2!r} mm^2: both must be > 0"
        )
    arr16 = np.ascontiguousarray(arr, dtype=np.int16)
    if not np.array_equal(arr16, arr):
        raise InputError("pixel values do not fit int16; rescale the image before the TG-220 pass")
    threshold_raw = (threshold_hu - intercept) / slope
    n = arr16.shape[0]
    sums = np.zeros(n, np.int64)
    counts = np.zeros(n, np.int64)
    trunc = np.zeros(n, np.int8)
    # Stored values are integers: raw > t holds exactly when raw > floor(t); clipping keeps the
    # comparison meaningful for thresholds beyond the int16 range.
    threshold = int(np.clip(np.floor(threshold_raw), -32769, 32767))
    _wed_stack(arr16, threshold, sums, counts, trunc)
    # sum(HU / 1000 + 1) = (slope * sum(raw) + intercept * count) / 1000 + count
    weights = (slope * sums.astype(np.float64) + intercept * counts) / 1000.0 + counts
    area = weights * pixel_area_mm2
    return WaterEquivalent(
        area_mm2=area,
        diameter_mm=2.0 * np.sqrt(np.maximum(area, 0.0) / np.pi),
        pixel_count=counts,
        truncated=trunc.astype(np.bool_),
    )
