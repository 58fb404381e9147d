"""numba batch kernel of the dose model: one call per batch over struct-of-arrays inputs.

This module owns the kernel's output layout: :class:`RowResult` lists the output columns in
order, :data:`OUT_COLUMNS` and the column constants (``X_LO``, ``AVOIDABLE_DLP``, ...) are
derived from it, the kernel body writes through the constants and the plain-Python twin
(:mod:`optimiser.reference`) imports them. The CTDIvol(z) profile kernel lives in
:mod:`optimiser.profile_kernel`, the TG-220 water-equivalent area kernel in :mod:`optimiser.tg220`.

Private ``_kernels`` take only arrays and scalars; the public wrapper makes contiguous, typed
inputs, validates them and allocates the output. Tests compare every kernel with its twin.

Model (../shared/reference/planning-ct.md sections 4, 5 and 9):

- Helical over-ranging, both ends together (section 9; van der Molen & Geleijns, Radiology
  2007;242:208-216; Schilham et al., RadioGraphics 2010;30:1057-1067; Tzedakis et al., Med Phys
  2005;32:1621-1629): the table feed per rotation is pitch x total collimation W, and the extra
  rotations n_rot fall with pitch, so over-ranging = n_rot(p) x p x W. With
  n_rot(p) = b + a / p this is ``W x (a + b x p)``: continuous, zero at W = 0, and
  non-decreasing in W and in p for a, b >= 0 (van der Molen: "overrange length correlated
  positively with collimation and pitch"; Tzedakis: z-overscanning grows with collimation and
  pitch). Library defaults a = 0.94, b = 1.13 fit the middle of van der Molen's four 16-slice
  scanners: 1.99-4.04 extra rotations (middle 3.02) at the lowest pitch, 0.93-2.59 (middle
  1.76) at the highest, taking those pitches as 0.5 and 1.5 (the abstract does not give them:
  an assumption). Check: 24 mm at pitch 1.0 gives 50 mm and 20 mm at pitch 1.375 gives 50 mm,
  inside the 3.2-5.8 cm van der Molen measured for chest protocols and Schilham's 3-6 cm on
  16-slice scanners. Dynamic (adaptive) z-collimation removes part of it: a department sets
  ``dynamic_collimation_reduction`` (Christner et al., AJR 2010;194:W49-W55: 27-46% of the
  incident radiation of a 20 mm scan, 3-8% of a 500 mm scan; Schilham: up to about 50% of the
  over-ranging). Unknown W or pitch: the site's ``unknown_total_mm``. Axial: zero.
- A row's planned range P and irradiated range X: for a planned row (``is_planned``) P is
  lo..hi and X = P widened by half the over-ranging at each end; otherwise lo..hi is X and P is
  X narrowed by half the over-ranging (clipped to X's length). A known over-ranging
  (``overrange_mm`` not NaN: a dose report's DLP / CTDIvol minus its scanning length) replaces
  the model.
- DLP = CTDIvol x |X| (cm); excess = X outside the needed range N; avoidable excess = P outside
  [N_lo - tolerance, N_hi + tolerance] (severity rule 1); effective dose = CTDIvol x the integral
  of k over 1 cm slabs (region bands anchored to N's edges, section 5).
- Proposal (severity rule 3): P' = [min(max(P_lo, N_lo - tol), N_lo), max(min(P_hi, N_hi + tol),
  N_hi)] always contains N; it keeps the acquisition's over-ranging and scales CTDIvol.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt
from numba import njit

from optimiser.errors import InputError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]

# Table positions beyond a kilometre are corrupt input, and would make the slab walk run long.
MAX_ABS_Z_MM = 1.0e6
DEFAULT_SLAB_MM = 10.0


@dataclass(frozen=True, slots=True)
class RowResult:
    """The kernel's outputs for one row. The field order IS the output layout: column k of
    :func:`assess_batch`'s array is the k-th field (lengths in mm, DLP in mGy.cm, E in mSv)."""

    x_lo: float  # irradiated range X
    x_hi: float
    dlp: float
    excess_length: float  # X outside N (over-ranging included)
    excess_dlp: float
    effective_dose: float
    excess_effective_dose: float
    planned_lo: float  # planned range P
    planned_hi: float
    avoidable_length: float  # P outside N +- tolerance
    avoidable_dlp: float
    avoidable_effective_dose: float
    overrange: float  # total over-ranging used (both ends)
    proposal_lo: float  # proposed planned range P' (contains N)
    proposal_hi: float
    proposal_dlp: float
    proposal_effective_dose: float
    # 1.0 when ``overrange`` is the model extrapolated beyond its fitted collimation
    # (``fitted_max_collimation_mm``), else 0.0: a prediction resting on it raises info only.
    overrange_extrapolated: float = 0.0

    @property
    def excess_fraction(self) -> float:
        return self.excess_dlp / self.dlp if self.dlp > 0 else 0.0

    @property
    def avoidable_fraction(self) -> float:
        return self.avoidable_dlp / self.dlp if self.dlp > 0 else 0.0


OUT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RowResult))
N_OUT = len(OUT_COLUMNS)
COL: dict[str, int] = {name: i for i, name in enumerate(OUT_COLUMNS)}
# Named column indices (module constants: numba freezes them into the kernel at compile time).
X_LO = COL["x_lo"]
X_HI = COL["x_hi"]
DLP = COL["dlp"]
EXCESS_LENGTH = COL["excess_length"]
EXCESS_DLP = COL["excess_dlp"]
EFFECTIVE_DOSE = COL["effective_dose"]
EXCESS_EFFECTIVE_DOSE = COL["excess_effective_dose"]
PLANNED_LO = COL["planned_lo"]
PLANNED_HI = COL["planned_hi"]
AVOIDABLE_LENGTH = COL["avoidable_length"]
AVOIDABLE_DLP = COL["avoidable_dlp"]
AVOIDABLE_EFFECTIVE_DOSE = COL["avoidable_effective_dose"]
OVERRANGE = COL["overrange"]
PROPOSAL_LO = COL["proposal_lo"]
PROPOSAL_HI = COL["proposal_hi"]
PROPOSAL_DLP = COL["proposal_dlp"]
PROPOSAL_EFFECTIVE_DOSE = COL["proposal_effective_dose"]
OVERRANGE_EXTRAPOLATED = COL["overrange_extrapolated"]

# Columns of SiteTables.overranging (per site), in this order.
OVERRANGING_PARAMS: tuple[str, ...] = (
    "intercept_widths",
    "rotations_of_feed",
    "unknown_total_mm",
    "dynamic_collimation_reduction",
    "fitted_max_collimation_mm",
    "wide_beam_reduction",
)


def results_of(out: F64) -> list[RowResult]:
    """The rows of :func:`assess_batch`'s output as :class:`RowResult` objects."""
    return [RowResult(*values) for values in out.tolist()]


@njit(cache=True, nogil=True)
def _overrange(
    collimation: float,
    pitch: float,
    helical: bool,
    intercept: float,
    rotations: float,
    unknown_total: float,
    reduction: float,
    fitted_max: float,
    wide_reduction: float,
) -> float:
    # Up to the fitted collimation the fit itself; the part of W beyond it is extrapolated and
    # taken with ``wide_reduction`` (the wide-beam dynamic-collimation bound; 0 when the
    # scanner's own reduction is known): continuous and non-decreasing in W and in pitch.
    if not helical:
        return 0.0
    if np.isnan(collimation) or np.isnan(pitch):
        return unknown_total
    w = max(collimation, 0.0)
    inside = min(w, fitted_max)
    widths = inside + (w - inside) * (1.0 - wide_reduction)
    return widths * (intercept + rotations * max(pitch, 0.0)) * (1.0 - reduction)


@njit(cache=True, nogil=True)
def _extrapolated(collimation: float, pitch: float, helical: bool, fitted_max: float) -> bool:
    # The model (not a known over-ranging) used beyond the collimation its sources cover.
    return helical and not np.isnan(pitch) and collimation > fitted_max


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
def _beyond(
    lo: float,
    hi: float,
    n_lo: float,
    n_hi: float,
    gap: float,
    s: int,
    above_end: F64,
    above_k: F64,
    below_end: F64,
    below_k: F64,
    slab: float,
) -> float:
    # Integral of k over the part of [lo, hi] more than ``gap`` beyond N (bands from N's edges).
    total = 0.0
    a = max(lo, n_hi + gap)
    if hi > a:
        total += _walk(a - n_hi, hi - n_hi, above_end, above_k, s, 1.0, slab)
    b = min(hi, n_lo - gap)
    if b > lo:
        total += _walk(n_lo - b, n_lo - lo, below_end, below_k, s, 1.0, slab)
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
    outside = _beyond(lo, hi, n_lo, n_hi, 0.0, s, above_end, above_k, below_end, below_k, slab)
    inside = 0.0
    a = max(lo, n_lo)
    b = min(hi, n_hi)
    length = n_hi - n_lo
    if b > a and length > 0.0:
        inside = _walk(n_hi - b, n_hi - a, inside_frac, inside_k, s, length, slab)
    return outside, inside


@njit(cache=True, nogil=True)
def _outside_length(lo: float, hi: float, n_lo: float, n_hi: float) -> float:
    return (hi - lo) - max(0.0, min(hi, n_hi) - max(lo, n_lo))


@njit(cache=True, nogil=True)
def _assess_batch(
    lo: F64,
    hi: F64,
    is_planned: I8,
    helical: I8,
    collimation: F64,
    pitch: F64,
    overrange_known: F64,
    reduction: F64,
    n_lo: F64,
    n_hi: F64,
    ctdivol: F64,
    scale: F64,
    tolerance: F64,
    site: I64,
    keep_range: I8,
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
    """One row of ``out`` (columns: :class:`RowResult`) per acquisition. The inputs are the
    fields of :class:`BatchInput` in its order (documented there) followed by the per-site
    :class:`SiteTables` arrays and the slab width in mm; :func:`assess_batch` validates them."""
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
        over = overrange_known[i]
        extrapolated = False
        if np.isnan(over):
            # NaN reduction: the site's, with the wide-beam bound beyond the fitted collimation;
            # a scanner's own reduction replaces both.
            own = not np.isnan(reduction[i])
            over = _overrange(
                collimation[i],
                pitch[i],
                helical[i] != 0,
                overranging[s, 0],
                overranging[s, 1],
                overranging[s, 2],
                reduction[i] if own else overranging[s, 3],
                overranging[s, 4],
                0.0 if own else overranging[s, 5],
            )
            extrapolated = _extrapolated(
                collimation[i], pitch[i], helical[i] != 0, overranging[s, 4]
            )
        over = max(over, 0.0)
        if is_planned[i] != 0:
            half = 0.5 * over
            p_lo = lo[i]
            p_hi = hi[i]
            x_lo = p_lo - half
            x_hi = p_hi + half
        else:
            over = min(over, hi[i] - lo[i])
            half = 0.5 * over
            x_lo = lo[i]
            x_hi = hi[i]
            p_lo = x_lo + half
            p_hi = x_hi - half
        nl = n_lo[i]
        nh = n_hi[i]
        tol = tolerance[i]
        c = ctdivol[i]
        excess_len = _outside_length(x_lo, x_hi, nl, nh)
        out_k, in_k = _range_dose(
            x_lo, x_hi, nl, nh, s, inside_frac, inside_k, above_end, above_k, below_end, below_k,
            slab,
        )  # fmt: skip
        avoid_len = _outside_length(p_lo, p_hi, nl - tol, nh + tol)
        avoid_k = _beyond(p_lo, p_hi, nl, nh, tol, s, above_end, above_k, below_end, below_k, slab)
        out[i, X_LO] = x_lo
        out[i, X_HI] = x_hi
        out[i, DLP] = c * (x_hi - x_lo) / 10.0
        out[i, EXCESS_LENGTH] = excess_len
        out[i, EXCESS_DLP] = c * excess_len / 10.0
        out[i, EFFECTIVE_DOSE] = c * (out_k + in_k) / 10.0
        out[i, EXCESS_EFFECTIVE_DOSE] = c * out_k / 10.0
        out[i, PLANNED_LO] = p_lo
        out[i, PLANNED_HI] = p_hi
        out[i, AVOIDABLE_LENGTH] = avoid_len
        out[i, AVOIDABLE_DLP] = c * avoid_len / 10.0
        out[i, AVOIDABLE_EFFECTIVE_DOSE] = c * avoid_k / 10.0
        out[i, OVERRANGE] = over
        out[i, OVERRANGE_EXTRAPOLATED] = 1.0 if extrapolated else 0.0

        # Proposal: the planned range within N +- tolerance but never inside N; a range that is
        # kept (its own dose class) stays as planned.
        if keep_range[i] != 0:
            q_lo = p_lo
            q_hi = p_hi
        else:
            q_lo = min(max(p_lo, nl - tol), nl)
            q_hi = max(min(p_hi, nh + tol), nh)
        pc = c * scale[i]
        q_out_k, q_in_k = _range_dose(
            q_lo - half, q_hi + half, nl, nh, s, inside_frac, inside_k, above_end, above_k,
            below_end, below_k, slab,
        )  # fmt: skip
        out[i, PROPOSAL_LO] = q_lo
        out[i, PROPOSAL_HI] = q_hi
        out[i, PROPOSAL_DLP] = pc * (q_hi - q_lo + over) / 10.0
        out[i, PROPOSAL_EFFECTIVE_DOSE] = pc * (q_out_k + q_in_k) / 10.0


@dataclass(slots=True)
class BatchInput:
    """Struct-of-arrays input of :func:`assess_batch` (the typed batch of ``_assess_batch``):
    one element per acquisition, all arrays of the same length.

    - ``lo``, ``hi`` (mm, table z): the planned range when ``is_planned`` is 1 (over-ranging is
      added about it), else the irradiated range itself (over-ranging is taken off it).
    - ``helical`` (0/1): over-ranging applies; ``collimation_mm`` (total nominal collimation)
      and ``pitch``: NaN when unknown (the site's unknown over-ranging is then used).
    - ``overrange_mm``: a known total over-ranging (e.g. a dose report's DLP / CTDIvol minus its
      scanning length), NaN to use the model; ``dynamic_reduction``: the scanner's
      dynamic-collimation reduction of the modelled over-ranging, NaN for the site's.
    - ``n_lo``, ``n_hi``: the needed range N (margins included); ``tolerance_mm``: how far a
      planned range may pass N before the excess is avoidable.
    - ``ctdivol_mgy``; ``scale``: the proposal's factor on CTDIvol; ``site``: the row of the
      site tables (:class:`SiteTables`).
    - ``keep_range`` (0/1): the proposal keeps the planned range (an acquisition of its own
      dose class, such as a stationary bolus-tracking level: stretching it over N would add
      dose).
    """

    lo: F64
    hi: F64
    is_planned: I8
    helical: I8
    collimation_mm: F64
    pitch: F64
    overrange_mm: F64
    dynamic_reduction: F64
    n_lo: F64
    n_hi: F64
    ctdivol_mgy: F64
    scale: F64
    tolerance_mm: F64
    site: I64
    keep_range: I8

    @classmethod
    def empty(cls, n: int) -> BatchInput:
        f, nan = np.zeros, np.full(n, np.nan)
        return cls(
            f(n), f(n), f(n, np.int8), f(n, np.int8), nan.copy(), nan.copy(), nan.copy(),
            nan.copy(), f(n), f(n), f(n), np.ones(n), f(n), f(n, np.int64), f(n, np.int8),
        )  # fmt: skip

    def __len__(self) -> int:
        return int(self.lo.shape[0])


@dataclass(slots=True)
class SiteTables:
    """Per-site tables (rows indexed by ``BatchInput.site``)."""

    overranging: F64  # (sites, 4): the OVERRANGING_PARAMS of each site
    inside_frac: F64
    inside_k: F64
    above_end: F64
    above_k: F64
    below_end: F64
    below_k: F64


def f64_array(name: str, value: npt.ArrayLike, n: int) -> F64:
    """``value`` as a contiguous float64 array of shape (n,), else an InputError naming it."""
    arr = np.ascontiguousarray(value, dtype=np.float64)
    if arr.shape != (n,):
        raise InputError(f"batch array {name} has shape {arr.shape}, expected ({n},)")
    return arr


def assess_batch(batch: BatchInput, tables: SiteTables, slab_mm: float = DEFAULT_SLAB_MM) -> F64:
    """Run the batch kernel: returns an (n, N_OUT) float64 array, columns as :class:`RowResult`.

    Ranges given high end first are reordered; NaN inputs give a NaN row.
    """
    n = len(batch)
    lo = f64_array("lo", batch.lo, n)
    hi = f64_array("hi", batch.hi, n)
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    n_lo = f64_array("n_lo", batch.n_lo, n)
    n_hi = f64_array("n_hi", batch.n_hi, n)
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
    if tables.overranging.ndim != 2 or tables.overranging.shape[1] != len(OVERRANGING_PARAMS):
        raise InputError(
            f"site tables overranging has shape {tables.overranging.shape}: expected (sites, "
            f"{len(OVERRANGING_PARAMS)}) columns {', '.join(OVERRANGING_PARAMS)}"
        )
    if not slab_mm > 0:
        raise InputError(f"slab_mm = {slab_mm!r}: must be > 0 (1 cm slabs: 10)")
    reduction = f64_array("dynamic_reduction", batch.dynamic_reduction, n)
    if np.any(reduction < 0.0) or np.any(reduction >= 1.0):
        raise InputError("batch dynamic_reduction must be NaN or a fraction 0 <= r < 1")
    out = np.empty((n, N_OUT), dtype=np.float64)
    _assess_batch(
        lo,
        hi,
        np.ascontiguousarray(batch.is_planned, dtype=np.int8),
        np.ascontiguousarray(batch.helical, dtype=np.int8),
        f64_array("collimation_mm", batch.collimation_mm, n),
        f64_array("pitch", batch.pitch, n),
        f64_array("overrange_mm", batch.overrange_mm, n),
        f64_array("dynamic_reduction", batch.dynamic_reduction, n),
        n_lo,
        n_hi,
        f64_array("ctdivol_mgy", batch.ctdivol_mgy, n),
        f64_array("scale", batch.scale, n),
        f64_array("tolerance_mm", batch.tolerance_mm, n),
        site,
        np.ascontiguousarray(batch.keep_range, dtype=np.int8),
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
