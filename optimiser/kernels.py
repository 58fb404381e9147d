"""numba batch kernels of the dose model: one call per batch over struct-of-arrays inputs.

The TG-220 water-equivalent area kernel lives in :mod:`optimiser.tg220`.

Private ``_kernels`` take only arrays and scalars; the public wrappers make contiguous, typed
inputs, validate them and allocate outputs. Each kernel has a plain-Python twin in
:mod:`optimiser.reference` (same formulas, see its docstring for the sources in
../shared/reference/planning-ct.md sections 4 to 6); tests compare the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt
from numba import njit

from optimiser.errors import InputError
from optimiser.reference import N_OUT, OUT_COLUMNS

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]

# Table positions beyond a kilometre are corrupt input, and would make the slab walk run long.
MAX_ABS_Z_MM = 1.0e6
DEFAULT_SLAB_MM = 10.0

COL = {name: i for i, name in enumerate(OUT_COLUMNS)}


@njit(cache=True, nogil=True)
def _overrange(
    collimation: float,
    pitch: float,
    helical: bool,
    factor: float,
    unknown_total: float,
    narrow_collimation: float,
    narrow_min: float,
    narrow_max: float,
) -> float:
    if not helical:
        return 0.0
    if np.isnan(collimation) or np.isnan(pitch):
        return unknown_total
    total = factor * pitch * collimation
    if collimation <= narrow_collimation:
        total = min(max(total, narrow_min), narrow_max)
    return total


@njit(cache=True, nogil=True)
def _walk(
    d_from: float,
    d_to: float,
    ends: F64,
    ks: F64,
    s: int,
    end_scale: float,
    slab: float,
) -> float:
    # Slabs are counted from the band anchor (an edge of N), so a slab never straddles N; a
    # slab crossing a region boundary is split there, so each part gets its own region's k.
    total = 0.0
    if not d_to > d_from:
        return total
    last = ends.shape[1] - 1
    j = 0
    i = np.floor(d_from / slab)
    while i * slab < d_to:
        pos = max(i * slab, d_from)
        hi = min((i + 1.0) * slab, d_to)
        while pos < hi:
            while j < last and pos >= ends[s, j] * end_scale:
                j += 1
            stop = ends[s, j] * end_scale
            if j == last or stop >= hi:
                stop = hi
            total += (stop - pos) * ks[s, j]
            pos = stop
        i += 1.0
    return total


@njit(cache=True, nogil=True)
def _range_dose(
    lo: float,
    hi: float,
    n_lo: float,
    n_hi: float,
    s: int,
    inside_frac: F64,
    inside_k: F64,
    above_end: F64,
    above_k: F64,
    below_end: F64,
    below_k: F64,
    slab: float,
) -> tuple[float, float]:
    outside = 0.0
    a = max(lo, n_hi)
    if hi > a:
        outside += _walk(a - n_hi, hi - n_hi, above_end, above_k, s, 1.0, slab)
    b = min(hi, n_lo)
    if b > lo:
        outside += _walk(n_lo - b, n_lo - lo, below_end, below_k, s, 1.0, slab)
    inside = 0.0
    a = max(lo, n_lo)
    b = min(hi, n_hi)
    length = n_hi - n_lo
    if b > a and length > 0.0:
        inside = _walk(n_hi - b, n_hi - a, inside_frac, inside_k, s, length, slab)
    return outside, inside


@njit(cache=True, nogil=True)
def _assess_batch(
    lo: F64,
    hi: F64,
    is_planned: I8,
    helical: I8,
    collimation: F64,
    pitch: F64,
    n_lo: F64,
    n_hi: F64,
    ctdivol: F64,
    scale: F64,
    tolerance: F64,
    site: I64,
    overranging: F64,
    inside_frac: F64,
    inside_k: F64,
    above_end: F64,
    above_k: F64,
    below_end: F64,
    below_k: F64,
    slab: float,
    out: F64,
) -> None:
    for i in range(lo.shape[0]):
        if (
            np.isnan(lo[i])
            or np.isnan(hi[i])
            or np.isnan(n_lo[i])
            or np.isnan(n_hi[i])
            or np.isnan(ctdivol[i])
            or np.isnan(scale[i])
            or np.isnan(tolerance[i])
        ):
            out[i, :] = np.nan
            continue
        s = site[i]
        over = _overrange(
            collimation[i],
            pitch[i],
            helical[i] != 0,
            overranging[s, 0],
            overranging[s, 1],
            overranging[s, 2],
            overranging[s, 3],
            overranging[s, 4],
        )
        half = 0.5 * over
        planned = is_planned[i] != 0
        if planned:
            x_lo = lo[i] - half
            x_hi = hi[i] + half
        else:
            x_lo = lo[i]
            x_hi = hi[i]
        nl = n_lo[i]
        nh = n_hi[i]
        c = ctdivol[i]
        inside_len = max(0.0, min(x_hi, nh) - max(x_lo, nl))
        excess_len = (x_hi - x_lo) - inside_len
        out_k, in_k = _range_dose(
            x_lo, x_hi, nl, nh, s, inside_frac, inside_k, above_end, above_k, below_end, below_k,
            slab,
        )  # fmt: skip
        out[i, 0] = x_lo
        out[i, 1] = x_hi
        out[i, 2] = c * (x_hi - x_lo) / 10.0
        out[i, 3] = excess_len
        out[i, 4] = c * excess_len / 10.0
        out[i, 5] = c * (out_k + in_k) / 10.0
        out[i, 6] = c * out_k / 10.0

        if planned:
            base_lo = lo[i]
            base_hi = hi[i]
        else:
            base_lo = x_lo + half
            base_hi = x_hi - half
            if base_hi < base_lo:
                base_lo = 0.5 * (x_lo + x_hi)
                base_hi = base_lo
        want_lo = nl - tolerance[i]
        want_hi = nh + tolerance[i]
        p_lo = max(base_lo, want_lo)
        p_hi = min(base_hi, want_hi)
        if p_hi >= p_lo:
            px_lo = max(x_lo, p_lo - half)
            px_hi = min(x_hi, p_hi + half)
        else:
            p_lo = want_lo
            p_hi = want_hi
            px_lo = p_lo - half
            px_hi = p_hi + half
        pc = c * scale[i]
        p_out_k, p_in_k = _range_dose(
            px_lo, px_hi, nl, nh, s, inside_frac, inside_k, above_end, above_k, below_end,
            below_k, slab,
        )  # fmt: skip
        out[i, 7] = p_lo
        out[i, 8] = p_hi
        out[i, 9] = pc * (px_hi - px_lo) / 10.0
        out[i, 10] = pc * (p_out_k + p_in_k) / 10.0
        out[i, 11] = over


@njit(cache=True, nogil=True)
def _band_integral(
    d_from: float, d_to: float, ends: F64, ks: F64, s: int, end_scale: float
) -> float:
    # Exact integral of k over [d_from, d_to] (distances from the anchor).
    total = 0.0
    if not d_to > d_from:
        return total
    last = ends.shape[1] - 1
    start = 0.0
    for j in range(last + 1):
        stop = np.inf if j == last else ends[s, j] * end_scale
        a = max(d_from, start)
        b = min(d_to, stop)
        if b > a:
            total += (b - a) * ks[s, j]
        start = stop
        if start >= d_to:
            break
    return total


@njit(cache=True, nogil=True)
def _profile_batch(
    offsets: I64,
    slab_lo: F64,
    slab_hi: F64,
    ctdivol: F64,
    n_lo: F64,
    n_hi: F64,
    site: I64,
    inside_frac: F64,
    inside_k: F64,
    above_end: F64,
    above_k: F64,
    below_end: F64,
    below_k: F64,
    out: F64,
) -> None:
    for a in range(offsets.shape[0] - 1):
        nl = n_lo[a]
        nh = n_hi[a]
        s = site[a]
        length = nh - nl
        dlp = 0.0
        excess_dlp = 0.0
        eff = 0.0
        excess_eff = 0.0
        excess_len = 0.0
        bad = np.isnan(nl) or np.isnan(nh)
        for i in range(offsets[a], offsets[a + 1]):
            lo = slab_lo[i]
            hi = slab_hi[i]
            c = ctdivol[i]
            if np.isnan(lo) or np.isnan(hi) or np.isnan(c):
                bad = True
                break
            if not hi > lo:
                continue
            dlp += c * (hi - lo) / 10.0
            above = _band_integral(max(lo, nh) - nh, hi - nh, above_end, above_k, s, 1.0)
            below = _band_integral(nl - min(hi, nl), nl - lo, below_end, below_k, s, 1.0)
            out_len = max(0.0, hi - max(lo, nh)) + max(0.0, min(hi, nl) - lo)
            inside = 0.0
            ia = max(lo, nl)
            ib = min(hi, nh)
            if ib > ia and length > 0.0:
                inside = _band_integral(nh - ib, nh - ia, inside_frac, inside_k, s, length)
            excess_len += out_len
            excess_dlp += c * out_len / 10.0
            excess_eff += c * (above + below) / 10.0
            eff += c * (above + below + inside) / 10.0
        if bad:
            out[a, :] = np.nan
        else:
            out[a, 0] = dlp
            out[a, 1] = excess_dlp
            out[a, 2] = eff
            out[a, 3] = excess_eff
            out[a, 4] = excess_len


PROFILE_COLUMNS = ("dlp", "excess_dlp", "effective_dose", "excess_effective_dose", "excess_length")


def profile_batch(
    profiles: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    n_lo: npt.ArrayLike,
    n_hi: npt.ArrayLike,
    site: npt.ArrayLike,
    tables: SiteTables,
) -> F64:
    """Dose of acquisitions whose CTDIvol varies along z (model step 3 with a known profile).

    Each profile is (z edges, n + 1 ascending values in mm; CTDIvol of each of the n slabs).
    Returns an (acquisitions, 5) array in :data:`PROFILE_COLUMNS` order; one kernel call.
    """
    n = len(profiles)
    counts = np.zeros(n + 1, np.int64)
    los: list[F64] = []
    his: list[F64] = []
    cs: list[F64] = []
    for i, (edges_like, values_like) in enumerate(profiles):
        edges = np.asarray(edges_like, dtype=np.float64)
        values = np.asarray(values_like, dtype=np.float64)
        if edges.ndim != 1 or values.shape != (max(edges.shape[0] - 1, 0),):
            raise InputError(
                f"dose profile {i}: {edges.shape[0]} z edges and {values.shape} CTDIvol values; "
                "give n + 1 slab edges for n slab values"
            )
        if np.any(np.diff(edges) < 0):
            raise InputError(f"dose profile {i}: z edges must ascend (sort the images by z)")
        los.append(edges[:-1])
        his.append(edges[1:])
        cs.append(values)
        counts[i + 1] = values.shape[0]
    offsets = np.cumsum(counts)
    flat = [np.ascontiguousarray(np.concatenate(x) if x else np.zeros(0)) for x in (los, his, cs)]
    lo_n = _f64("n_lo", n_lo, n)
    hi_n = _f64("n_hi", n_hi, n)
    site_arr = np.ascontiguousarray(site, dtype=np.int64)
    if site_arr.shape != (n,) or (
        n and (site_arr.min() < 0 or site_arr.max() >= len(tables.overranging))
    ):
        raise InputError(
            f"profile site indices must be {n} values in 0..{len(tables.overranging) - 1}"
        )
    out = np.empty((n, len(PROFILE_COLUMNS)), np.float64)
    _profile_batch(
        offsets,
        flat[0],
        flat[1],
        flat[2],
        np.minimum(lo_n, hi_n),
        np.maximum(lo_n, hi_n),
        site_arr,
        tables.inside_frac,
        tables.inside_k,
        tables.above_end,
        tables.above_k,
        tables.below_end,
        tables.below_k,
        out,
    )
    return out


def profile_from_images(
    z_mm: npt.ArrayLike, weight: npt.ArrayLike, ctdivol_mean_mgy: float
) -> tuple[F64, F64]:
    """Slab edges and CTDIvol(z) from image positions and a per-image weight (the image's
    CTDIvol (0018,9345) or X-Ray Tube Current (0018,1151)), scaled so that the length-weighted
    mean equals ``ctdivol_mean_mgy``: the profile keeps the reported DLP (planning-ct.md
    section 2, CTDIvol per image under tube-current modulation)."""
    z = np.asarray(z_mm, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    order = np.argsort(z)
    z = z[order]
    w = w[order]
    if z.shape[0] < 2 or w.shape != z.shape:
        raise InputError(
            f"dose profile from {z.shape[0]} image positions and {w.shape[0]} weights: "
            "need at least two images, one weight each"
        )
    mid = 0.5 * (z[1:] + z[:-1])
    edges = np.concatenate(([z[0] - (mid[0] - z[0])], mid, [z[-1] + (z[-1] - mid[-1])]))
    widths = np.diff(edges)
    mean_w = float(np.sum(w * widths) / np.sum(widths))
    if not mean_w > 0:
        raise InputError("dose profile weights are all zero: no tube current or CTDIvol")
    return edges, w * (ctdivol_mean_mgy / mean_w)


@dataclass(slots=True)
class BatchInput:
    """Struct-of-arrays input of :func:`assess_batch`: one element per acquisition.

    ``lo``/``hi`` is the planned range when ``is_planned`` (over-ranging is added), else the
    irradiated range itself. NaN collimation or pitch means unknown.
    """

    lo: F64
    hi: F64
    is_planned: I8
    helical: I8
    collimation_mm: F64
    pitch: F64
    n_lo: F64
    n_hi: F64
    ctdivol_mgy: F64
    scale: F64
    tolerance_mm: F64
    site: I64

    @classmethod
    def empty(cls, n: int) -> BatchInput:
        f = np.zeros
        return cls(
            f(n), f(n), f(n, np.int8), f(n, np.int8), np.full(n, np.nan), np.full(n, np.nan),
            f(n), f(n), f(n), np.ones(n), f(n), f(n, np.int64),
        )  # fmt: skip

    def __len__(self) -> int:
        return int(self.lo.shape[0])


@dataclass(slots=True)
class SiteTables:
    """Per-site tables (rows indexed by ``BatchInput.site``)."""

    overranging: F64  # (sites, 5): factor, unknown total, narrow collimation, narrow min, max
    inside_frac: F64
    inside_k: F64
    above_end: F64
    above_k: F64
    below_end: F64
    below_k: F64


def _f64(name: str, value: npt.ArrayLike, n: int) -> F64:
    arr = np.ascontiguousarray(value, dtype=np.float64)
    if arr.shape != (n,):
        raise InputError(f"batch array {name} has shape {arr.shape}, expected ({n},)")
    return arr


def assess_batch(batch: BatchInput, tables: SiteTables, slab_mm: float = DEFAULT_SLAB_MM) -> F64:
    """Run the batch kernel: returns an (n, len(OUT_COLUMNS)) float64 array.

    Ranges given high end first are reordered; NaN inputs give a NaN row.
    """
    n = len(batch)
    lo = _f64("lo", batch.lo, n)
    hi = _f64("hi", batch.hi, n)
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    n_lo = _f64("n_lo", batch.n_lo, n)
    n_hi = _f64("n_hi", batch.n_hi, n)
    n_lo, n_hi = np.minimum(n_lo, n_hi), np.maximum(n_lo, n_hi)
    with np.errstate(invalid="ignore"):
        if n and (
            np.nanmax(np.abs(np.concatenate((lo, hi, n_lo, n_hi))), initial=0.0) > MAX_ABS_Z_MM
        ):
            raise InputError(
                f"table position beyond {MAX_ABS_Z_MM:g} mm in a batch: z values must be table "
                "positions in mm; check the units of the feed"
            )
    site = np.ascontiguousarray(batch.site, dtype=np.int64)
    if n and (site.min() < 0 or site.max() >= tables.overranging.shape[0]):
        raise InputError(f"batch site index out of range 0..{tables.overranging.shape[0] - 1}")
    if not slab_mm > 0:
        raise InputError(f"slab_mm = {slab_mm!r}: must be > 0 (1 cm slabs: 10)")
    out = np.empty((n, N_OUT), dtype=np.float64)
    _assess_batch(
        lo,
        hi,
        np.ascontiguousarray(batch.is_planned, dtype=np.int8),
        np.ascontiguousarray(batch.helical, dtype=np.int8),
        _f64("collimation_mm", batch.collimation_mm, n),
        _f64("pitch", batch.pitch, n),
        n_lo,
        n_hi,
        _f64("ctdivol_mgy", batch.ctdivol_mgy, n),
        _f64("scale", batch.scale, n),
        _f64("tolerance_mm", batch.tolerance_mm, n),
        site,
        np.ascontiguousarray(tables.overranging, dtype=np.float64),
        np.ascontiguousarray(tables.inside_frac, dtype=np.float64),
        np.ascontiguousarray(tables.inside_k, dtype=np.float64),
        np.ascontiguousarray(tables.above_end, dtype=np.float64),
        np.ascontiguousarray(tables.above_k, dtype=np.float64),
        np.ascontiguousarray(tables.below_end, dtype=np.float64),
        np.ascontiguousarray(tables.below_k, dtype=np.float64),
        float(slab_mm),
        out,
    )
    return out


@dataclass(frozen=True, slots=True)
class RowResult:
    """The kernel's outputs for one row: one field per column of :data:`OUT_COLUMNS`, same order."""

    x_lo: float
    x_hi: float
    dlp: float
    excess_length: float
    excess_dlp: float
    effective_dose: float
    excess_effective_dose: float
    proposal_lo: float
    proposal_hi: float
    proposal_dlp: float
    proposal_effective_dose: float
    overrange: float

    @property
    def excess_fraction(self) -> float:
        return self.excess_dlp / self.dlp if self.dlp > 0 else 0.0


# The output layout has one owner: OUT_COLUMNS names the columns, RowResult's fields follow it.
if tuple(f.name for f in fields(RowResult)) != OUT_COLUMNS:  # pragma: no cover - import guard
    raise ImportError("RowResult fields must follow OUT_COLUMNS in order")


def results_of(out: F64) -> list[RowResult]:
    """The rows of :func:`assess_batch`'s output as :class:`RowResult` objects."""
    return [RowResult(*values) for values in out.tolist()]
