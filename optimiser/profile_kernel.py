"""numba kernel of the dose along z when CTDIvol varies (tube-current modulation): one call per
batch of acquisitions, each given as slabs of constant CTDIvol.

Split from :mod:`optimiser.kernels` (which owns the per-acquisition batch kernel and the site
tables). The plain-Python twin is :func:`optimiser.reference.profile_dose`. Sources: the region
bands and k of ../shared/reference/planning-ct.md section 5 (Huda et al., Radiology
2008;248:995-1003: k integrated slab by slab); CTDIvol per image under tube-current modulation,
section 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from numba import njit

from optimiser.errors import InputError
from optimiser.kernels import SiteTables, f64_array

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


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
    lo_n = f64_array("n_lo", n_lo, n)
    hi_n = f64_array("n_hi", n_hi, n)
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
