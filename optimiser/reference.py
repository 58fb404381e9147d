"""Plain-Python reference twins of the numba kernels, written straight from the formulas.

They are slow on purpose: one scalar loop, no numpy tricks, so a reader can check them against
the model line by line. Tests compare every kernel with its twin on seeded inputs, and the
benchmarks time the twins as the baseline.

Formulas (../shared/reference/planning-ct.md):
- irradiated range X = planned range widened by half the helical over-ranging at each end;
  over-ranging = factor x pitch x total collimation, bounded to the 3-6 cm total published for
  16-slice scanners when the collimation is that narrow (Schilham et al., RadioGraphics 2010;
  30:1057-1067, section 4);
- DLP = CTDIvol x |X| (mGy.cm, |X| in cm); excess = the part of X outside the needed range N;
- effective dose = sum over 1 cm slabs of CTDIvol x the integral of k over the slab (a slab
  crossing a region boundary is split there),
  regions banded from the edges of N (section 5, Huda et al., Radiology 2008;248:995-1003);
- TG-220 water-equivalent area A_w = sum over patient pixels of (HU / 1000 + 1) x pixel area,
  D_w = 2 sqrt(A_w / pi) (section 6); the patient is the largest region above an air threshold
  (the couch left out), each row filled between its outer pixels so the lungs count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

OUT_COLUMNS: tuple[str, ...] = (
    "x_lo",
    "x_hi",
    "dlp",
    "excess_length",
    "excess_dlp",
    "effective_dose",
    "excess_effective_dose",
    "proposal_lo",
    "proposal_hi",
    "proposal_dlp",
    "proposal_effective_dose",
    "overrange",
)
N_OUT = len(OUT_COLUMNS)


def overrange_mm(
    collimation_mm: float,
    pitch: float,
    helical: bool,
    factor: float,
    unknown_total_mm: float,
    narrow_collimation_mm: float,
    narrow_min_mm: float,
    narrow_max_mm: float,
) -> float:
    """Total helical over-ranging (both ends together) of one acquisition."""
    if not helical:
        return 0.0
    if math.isnan(collimation_mm) or math.isnan(pitch):
        return unknown_total_mm
    total = factor * pitch * collimation_mm
    if collimation_mm <= narrow_collimation_mm:
        total = min(max(total, narrow_min_mm), narrow_max_mm)
    return total


def band_integral(lo: float, hi: float, ends: Sequence[float], ks: Sequence[float]) -> float:
    """Integral of k over [lo, hi] (distances from the anchor); band j spans
    [ends[j-1], ends[j]) with ends[-1] = 0, the last band runs on to infinity."""
    total = 0.0
    start = 0.0
    for j, (end, k) in enumerate(zip(ends, ks, strict=True)):
        stop = math.inf if j == len(ends) - 1 else end
        overlap = min(hi, stop) - max(lo, start)
        if overlap > 0:
            total += overlap * k
        start = end
    return total


def walk_slabs(
    d_from: float, d_to: float, ends: Sequence[float], ks: Sequence[float], slab_mm: float
) -> float:
    """Sum over slabs of ``slab_mm`` (counted from the anchor, an edge of N) of the integral of
    k over the slab's part of [d_from, d_to]."""
    total = 0.0
    if not d_to > d_from:
        return total
    i = math.floor(d_from / slab_mm)
    while i * slab_mm < d_to:
        lo = max(i * slab_mm, d_from)
        hi = min((i + 1) * slab_mm, d_to)
        if hi > lo:
            total += band_integral(lo, hi, ends, ks)
        i += 1
    return total


def range_dose(
    lo: float,
    hi: float,
    n_lo: float,
    n_hi: float,
    inside_frac: Sequence[float],
    inside_k: Sequence[float],
    above_end: Sequence[float],
    above_k: Sequence[float],
    below_end: Sequence[float],
    below_k: Sequence[float],
    slab_mm: float,
) -> tuple[float, float]:
    """(integral of k over the part of [lo, hi] outside N, over the part inside N), in mm."""
    outside = 0.0
    # Above N: distances from the superior edge.
    a, b = max(lo, n_hi), hi
    if b > a:
        outside += walk_slabs(a - n_hi, b - n_hi, above_end, above_k, slab_mm)
    # Below N: distances from the inferior edge.
    a, b = lo, min(hi, n_lo)
    if b > a:
        outside += walk_slabs(n_lo - b, n_lo - a, below_end, below_k, slab_mm)
    inside = 0.0
    a, b = max(lo, n_lo), min(hi, n_hi)
    length = n_hi - n_lo
    if b > a and length > 0:
        ends = [f * length if f != math.inf else math.inf for f in inside_frac]
        inside = walk_slabs(n_hi - b, n_hi - a, ends, inside_k, slab_mm)
    return outside, inside


def assess_one(
    lo: float,
    hi: float,
    is_planned: bool,
    helical: bool,
    collimation_mm: float,
    pitch: float,
    n_lo: float,
    n_hi: float,
    ctdivol: float,
    scale: float,
    tolerance_mm: float,
    overranging: Sequence[float],
    tables: tuple[
        Sequence[float],
        Sequence[float],
        Sequence[float],
        Sequence[float],
        Sequence[float],
        Sequence[float],
    ],
    slab_mm: float,
) -> list[float]:
    """All outputs of one acquisition, in :data:`OUT_COLUMNS` order.

    ``overranging`` = (factor, unknown total, narrow collimation, narrow min, narrow max);
    ``tables`` = the site's (inside_frac, inside_k, above_end, above_k, below_end, below_k).
    """
    # Collimation and pitch may be NaN (unknown): over-ranging then takes its default.
    required = (lo, hi, n_lo, n_hi, ctdivol, scale, tolerance_mm)
    if any(math.isnan(v) for v in required):
        return [math.nan] * N_OUT
    over = overrange_mm(collimation_mm, pitch, helical, *overranging)
    half = 0.5 * over
    x_lo, x_hi = (lo - half, hi + half) if is_planned else (lo, hi)
    length = x_hi - x_lo
    inside_len = max(0.0, min(x_hi, n_hi) - max(x_lo, n_lo))
    excess_len = length - inside_len
    out_k, in_k = range_dose(x_lo, x_hi, n_lo, n_hi, *tables, slab_mm)
    dlp = ctdivol * length / 10.0
    excess_dlp = ctdivol * excess_len / 10.0
    eff = ctdivol * (out_k + in_k) / 10.0
    excess_eff = ctdivol * out_k / 10.0

    # Proposal: the planned range trimmed to N plus tolerance, same over-ranging, CTDIvol scaled.
    if is_planned:
        base_lo, base_hi = lo, hi
    else:
        base_lo, base_hi = x_lo + half, x_hi - half
        if base_hi < base_lo:
            base_lo = base_hi = 0.5 * (x_lo + x_hi)
    want_lo, want_hi = n_lo - tolerance_mm, n_hi + tolerance_mm
    p_lo, p_hi = max(base_lo, want_lo), min(base_hi, want_hi)
    if p_hi >= p_lo:
        px_lo, px_hi = max(x_lo, p_lo - half), min(x_hi, p_hi + half)
    else:
        p_lo, p_hi = want_lo, want_hi
        px_lo, px_hi = p_lo - half, p_hi + half
    p_ctdivol = ctdivol * scale
    p_out_k, p_in_k = range_dose(px_lo, px_hi, n_lo, n_hi, *tables, slab_mm)
    p_dlp = p_ctdivol * (px_hi - px_lo) / 10.0
    p_eff = p_ctdivol * (p_out_k + p_in_k) / 10.0
    return [
        x_lo,
        x_hi,
        dlp,
        excess_len,
        excess_dlp,
        eff,
        excess_eff,
        p_lo,
        p_hi,
        p_dlp,
        p_eff,
        over,
    ]


def water_equivalent_area(
    pixels: Sequence[Sequence[int]],
    slope: float,
    intercept: float,
    threshold_hu: float,
    pixel_area_mm2: float,
) -> tuple[float, int, bool]:
    """TG-220 A_w (mm^2) of the patient: the largest 4-connected region above ``threshold_hu``
    (first found in raster order on a tie), each row filled from its first to its last pixel.

    Returns (A_w, pixels summed, truncated: the region touches the image edge).
    """
    rows = len(pixels)
    cols = len(pixels[0]) if rows else 0
    hu = [[pixels[r][c] * slope + intercept for c in range(cols)] for r in range(rows)]
    label = [[0] * cols for _ in range(rows)]
    best_label, best_count, best_trunc = 0, 0, False
    current = 0
    for r0 in range(rows):
        for c0 in range(cols):
            if hu[r0][c0] <= threshold_hu or label[r0][c0]:
                continue
            current += 1
            label[r0][c0] = current
            stack = [(r0, c0)]
            count, trunc = 0, False
            while stack:
                r, c = stack.pop()
                count += 1
                if r in (0, rows - 1) or c in (0, cols - 1):
                    trunc = True
                for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                    inside = 0 <= rr < rows and 0 <= cc < cols
                    if inside and hu[rr][cc] > threshold_hu and not label[rr][cc]:
                        label[rr][cc] = current
                        stack.append((rr, cc))
            if count > best_count:
                best_label, best_count, best_trunc = current, count, trunc
    total = 0.0
    summed = 0
    for r in range(rows):
        cs = [c for c in range(cols) if best_label and label[r][c] == best_label]
        if cs:
            for c in range(min(cs), max(cs) + 1):
                total += hu[r][c] / 1000.0 + 1.0
                summed += 1
    return total * pixel_area_mm2, summed, best_trunc


def profile_dose(
    slab_lo: Sequence[float],
    slab_hi: Sequence[float],
    ctdivol: Sequence[float],
    n_lo: float,
    n_hi: float,
    tables: tuple[
        Sequence[float],
        Sequence[float],
        Sequence[float],
        Sequence[float],
        Sequence[float],
        Sequence[float],
    ],
) -> list[float]:
    """(DLP, excess DLP, effective dose, excess effective dose, excess length) of one
    acquisition whose CTDIvol varies along z: slab i spans [slab_lo[i], slab_hi[i]] at
    ``ctdivol[i]`` (e.g. one slab per image, CTDIvol following the tube current)."""
    inside_frac, inside_k, above_end, above_k, below_end, below_k = tables
    dlp = excess_dlp = eff = excess_eff = excess_len = 0.0
    length = n_hi - n_lo
    inside_ends = [f * length if f != math.inf else math.inf for f in inside_frac]
    for lo, hi, c in zip(slab_lo, slab_hi, ctdivol, strict=True):
        if math.isnan(lo) or math.isnan(hi) or math.isnan(c) or math.isnan(n_lo):
            return [math.nan] * 5
        if not hi > lo:
            continue
        dlp += c * (hi - lo) / 10.0
        above = band_integral(max(lo, n_hi) - n_hi, hi - n_hi, above_end, above_k)
        below = band_integral(n_lo - min(hi, n_lo), n_lo - lo, below_end, below_k)
        out_len = max(0.0, hi - max(lo, n_hi)) + max(0.0, min(hi, n_lo) - lo)
        a, b = max(lo, n_lo), min(hi, n_hi)
        inside = 0.0
        if b > a and length > 0:
            inside = band_integral(n_hi - b, n_hi - a, inside_ends, inside_k)
        excess_len += out_len
        excess_dlp += c * out_len / 10.0
        excess_eff += c * (above + below) / 10.0
        eff += c * (above + below + inside) / 10.0
    return [dlp, excess_dlp, eff, excess_eff, excess_len]
