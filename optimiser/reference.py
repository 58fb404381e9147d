"""Plain-Python reference twins of the numba kernels, written straight from the formulas.

They are slow on purpose: one scalar loop, no numpy tricks, so a reader can check them against
the model line by line. Tests compare every kernel with its twin on seeded inputs, and the
benchmarks time the twins as the baseline.

Formulas (../shared/reference/planning-ct.md):
- irradiated range X = planned range P widened by half the helical over-ranging at each end
  (or, when only X is known, P = X narrowed by it); over-ranging = total collimation x
  (a + b x pitch) x (1 - dynamic collimation reduction), the collimation beyond the fit's
  range (16-slice, 24 mm) taken with the wide-beam bound and flagged as extrapolated,
  continuous and non-decreasing in collimation and pitch (sources and values in
  :mod:`optimiser.kernels`; section 9); a known over-ranging (from a dose report) replaces the
  model;
- DLP = CTDIvol x |X| (mGy.cm, |X| in cm); excess = the part of X outside the needed range N;
  avoidable excess = the part of P outside N +- tolerance; proposal P' = [min(max(P_lo,
  N_lo - tol), N_lo), max(min(P_hi, N_hi + tol), N_hi)] (severity rules 1 and 3);
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

from optimiser.kernels import N_OUT, OUT_COLUMNS, BatchInput, SiteTables


def overrange_mm(
    collimation_mm: float,
    pitch: float,
    helical: bool,
    intercept_widths: float,
    rotations_of_feed: float,
    unknown_total_mm: float,
    dynamic_collimation_reduction: float,
    fitted_max_collimation_mm: float = math.inf,
    wide_beam_reduction: float = 0.0,
) -> float:
    """Total helical over-ranging (both ends together) of one acquisition:
    W' x (a + b x pitch) x (1 - dynamic reduction), where W' is W up to the fitted collimation
    plus the rest of W x (1 - wide-beam reduction); see :mod:`optimiser.kernels` for the
    sources and values."""
    if not helical:
        return 0.0
    if math.isnan(collimation_mm) or math.isnan(pitch):
        return unknown_total_mm
    feed_widths = intercept_widths + rotations_of_feed * max(pitch, 0.0)
    w = max(collimation_mm, 0.0)
    fitted = min(w, fitted_max_collimation_mm)
    widths = fitted + (w - fitted) * (1.0 - wide_beam_reduction)
    return widths * feed_widths * (1.0 - dynamic_collimation_reduction)


def overrange_extrapolated(
    collimation_mm: float, pitch: float, helical: bool, fitted_max_collimation_mm: float
) -> bool:
    """The model is used beyond the collimation its sources cover (W known and above it)."""
    return (
        helical
        and not math.isnan(pitch)
        and not math.isnan(collimation_mm)
        and collimation_mm > fitted_max_collimation_mm
    )


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


def beyond_dose(
    lo: float,
    hi: float,
    n_lo: float,
    n_hi: float,
    gap_mm: float,
    above_end: Sequence[float],
    above_k: Sequence[float],
    below_end: Sequence[float],
    below_k: Sequence[float],
    slab_mm: float,
) -> float:
    """Integral of k (mm) over the part of [lo, hi] lying more than ``gap_mm`` beyond N; the
    bands are still counted from N's edges."""
    total = 0.0
    # Above N: distances from the superior edge.
    a, b = max(lo, n_hi + gap_mm), hi
    if b > a:
        total += walk_slabs(a - n_hi, b - n_hi, above_end, above_k, slab_mm)
    # Below N: distances from the inferior edge.
    a, b = lo, min(hi, n_lo - gap_mm)
    if b > a:
        total += walk_slabs(n_lo - b, n_lo - a, below_end, below_k, slab_mm)
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
    outside = beyond_dose(lo, hi, n_lo, n_hi, 0.0, above_end, above_k, below_end, below_k, slab_mm)
    inside = 0.0
    a, b = max(lo, n_lo), min(hi, n_hi)
    length = n_hi - n_lo
    if b > a and length > 0:
        ends = [f * length if f != math.inf else math.inf for f in inside_frac]
        inside = walk_slabs(n_hi - b, n_hi - a, ends, inside_k, slab_mm)
    return outside, inside


def outside_length(lo: float, hi: float, n_lo: float, n_hi: float) -> float:
    """Length of [lo, hi] outside [n_lo, n_hi]."""
    return (hi - lo) - max(0.0, min(hi, n_hi) - max(lo, n_lo))


SiteRows = tuple[
    Sequence[float],
    Sequence[float],
    Sequence[float],
    Sequence[float],
    Sequence[float],
    Sequence[float],
]


def assess_one(
    lo: float,
    hi: float,
    is_planned: bool,
    helical: bool,
    collimation_mm: float,
    pitch: float,
    known_overrange_mm: float,
    dynamic_reduction: float,
    n_lo: float,
    n_hi: float,
    ctdivol: float,
    scale: float,
    tolerance_mm: float,
    overranging: Sequence[float],
    tables: SiteRows,
    slab_mm: float,
    keep_range: bool = False,
) -> list[float]:
    """All outputs of one acquisition, in :data:`optimiser.kernels.OUT_COLUMNS` order.

    ``overranging`` = the site's :data:`optimiser.kernels.OVERRANGING_PARAMS`; ``tables`` = the
    site's (inside_frac, inside_k, above_end, above_k, below_end, below_k);
    ``known_overrange_mm`` NaN means: use the model; ``dynamic_reduction`` NaN: the site's;
    ``keep_range``: the proposal keeps the planned range (an acquisition of its own dose class).
    """
    required = (lo, hi, n_lo, n_hi, ctdivol, scale, tolerance_mm)
    if any(math.isnan(v) for v in required):
        return [math.nan] * N_OUT
    _, _, above_end, above_k, below_end, below_k = tables
    over = known_overrange_mm
    extrapolated = False
    if math.isnan(over):
        a, b, unknown, site_reduction, fitted_max, wide = overranging
        # NaN: the site's reduction with the wide-beam bound beyond the fitted collimation; a
        # scanner's own reduction replaces both.
        if math.isnan(dynamic_reduction):
            reduction = site_reduction
        else:
            reduction, wide = dynamic_reduction, 0.0
        over = overrange_mm(
            collimation_mm, pitch, helical, a, b, unknown, reduction, fitted_max, wide
        )
        extrapolated = overrange_extrapolated(collimation_mm, pitch, helical, fitted_max)
    over = max(over, 0.0)
    if is_planned:
        # The planned range P is given; X is P widened by half the over-ranging at each end.
        p_lo, p_hi = lo, hi
        x_lo, x_hi = lo - over / 2, hi + over / 2
    else:
        # X is given (a dose report without a scanning length): P = X less the over-ranging.
        over = min(over, hi - lo)
        x_lo, x_hi = lo, hi
        p_lo, p_hi = lo + over / 2, hi - over / 2
    half = over / 2
    excess_len = outside_length(x_lo, x_hi, n_lo, n_hi)
    out_k, in_k = range_dose(x_lo, x_hi, n_lo, n_hi, *tables, slab_mm)
    avoid_len = outside_length(p_lo, p_hi, n_lo - tolerance_mm, n_hi + tolerance_mm)
    avoid_k = beyond_dose(
        p_lo, p_hi, n_lo, n_hi, tolerance_mm, above_end, above_k, below_end, below_k, slab_mm
    )

    # Proposal: P within N +- tolerance, never inside N (P itself when the range is kept); same
    # over-ranging, CTDIvol scaled.
    if keep_range:
        q_lo, q_hi = p_lo, p_hi
    else:
        q_lo = min(max(p_lo, n_lo - tolerance_mm), n_lo)
        q_hi = max(min(p_hi, n_hi + tolerance_mm), n_hi)
    q_ctdivol = ctdivol * scale
    q_out_k, q_in_k = range_dose(q_lo - half, q_hi + half, n_lo, n_hi, *tables, slab_mm)
    values = {
        "x_lo": x_lo,
        "x_hi": x_hi,
        "dlp": ctdivol * (x_hi - x_lo) / 10.0,
        "excess_length": excess_len,
        "excess_dlp": ctdivol * excess_len / 10.0,
        "effective_dose": ctdivol * (out_k + in_k) / 10.0,
        "excess_effective_dose": ctdivol * out_k / 10.0,
        "planned_lo": p_lo,
        "planned_hi": p_hi,
        "avoidable_length": avoid_len,
        "avoidable_dlp": ctdivol * avoid_len / 10.0,
        "avoidable_effective_dose": ctdivol * avoid_k / 10.0,
        "overrange": over,
        "proposal_lo": q_lo,
        "proposal_hi": q_hi,
        "proposal_dlp": q_ctdivol * (q_hi - q_lo + over) / 10.0,
        "proposal_effective_dose": q_ctdivol * (q_out_k + q_in_k) / 10.0,
        "overrange_extrapolated": 1.0 if extrapolated else 0.0,
    }
    return [values[name] for name in OUT_COLUMNS]


def assess_batch_twin(
    batch: BatchInput, tables: SiteTables, slab_mm: float = 10.0
) -> list[list[float]]:
    """:func:`assess_one` over a batch, with the kernel wrapper's reordering of reversed ends."""
    rows = []
    for i in range(len(batch)):
        s = int(batch.site[i])
        lo, hi = float(batch.lo[i]), float(batch.hi[i])
        if not (math.isnan(lo) or math.isnan(hi)):
            lo, hi = min(lo, hi), max(lo, hi)
        n_lo, n_hi = float(batch.n_lo[i]), float(batch.n_hi[i])
        if not (math.isnan(n_lo) or math.isnan(n_hi)):
            n_lo, n_hi = min(n_lo, n_hi), max(n_lo, n_hi)
        site_rows = tuple(
            getattr(tables, name)[s].tolist()
            for name in ("inside_frac", "inside_k", "above_end", "above_k", "below_end", "below_k")
        )
        rows.append(
            assess_one(
                lo,
                hi,
                bool(batch.is_planned[i]),
                bool(batch.helical[i]),
                float(batch.collimation_mm[i]),
                float(batch.pitch[i]),
                float(batch.overrange_mm[i]),
                float(batch.dynamic_reduction[i]),
                n_lo,
                n_hi,
                float(batch.ctdivol_mgy[i]),
                float(batch.scale[i]),
                float(batch.tolerance_mm[i]),
                tables.overranging[s].tolist(),
                site_rows,
                slab_mm,
                bool(batch.keep_range[i]),
            )
        )
    return rows


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
    tables: SiteRows,
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
