"""Output rounding of a whole batch at once, equal to Python's ``round`` value for value.

An assessment reports about thirty numbers, each rounded to 2 to 5 decimals; ``round(x, n)``
per value was a tenth of the pipeline's CPU. :func:`rounded_rows` rounds every number of a
batch in one numpy pass over a (column, row) matrix (one pass per column cost about 300 us per
pipeline call, half the cost of assessing a single event), and gives exactly what
``round(float(x), n)`` gives: Python rounds the exact binary value of x
half to even to n decimals and returns the double nearest to that decimal. ``np.rint(x * 10**n)``
is the same integer m unless the product, rounded to a double, lies within an ulp or so of a
half-integer (or is not finite, or too large to hold every integer); those values, rare in
practice, go through ``round`` itself. For the others m / 10**n, a correctly rounded IEEE
division of two exactly representable numbers, is the double nearest to the decimal m·10^-n,
as ``round``'s result is. tests/test_rounding.py compares the two on adversarial values.

:class:`Rounded` holds, per row, every rounded number :mod:`optimiser.assemble`,
:func:`optimiser.findings.excess_coverage` and :func:`optimiser.proposal.build_proposal`
report; :func:`rounded_one` is its plain-``round`` twin for single rows (and for tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from optimiser.dose_model import AcquisitionRow
from optimiser.kernels import COL, RowResult

F64 = npt.NDArray[np.float64]


def round_exact(x: F64, digits: int) -> list[float]:
    """``[round(float(v), digits) for v in x]``, computed in numpy (see the module docstring)."""
    return _round_matrix(x.reshape(1, -1), np.array([[10.0**digits]]), (digits,))[0]


def _round_matrix(x: F64, scale: F64, digits: Sequence[int]) -> list[list[float]]:
    """Row ``i`` of ``x`` rounded to ``digits[i]`` decimals (``scale[i, 0] == 10**digits[i]``),
    as lists; one pass over the whole matrix, so a batch of one row costs a few numpy calls,
    not a few per column."""
    with np.errstate(all="ignore"):
        y = x * scale
        out: list[list[float]] = (np.rint(y) / scale).tolist()
        distance = np.abs(y - np.floor(y) - 0.5)
        unsure = (distance <= 4.0 * np.spacing(np.abs(y))) | ~(np.abs(y) < 2.0**52)
    if unsure.any():
        for i, j in np.argwhere(unsure).tolist():
            out[i][j] = round(float(x[i, j]), digits[i])
    return out


class Rounded(NamedTuple):
    """The rounded numbers of one row (decimals as in :data:`DIGITS`)."""

    needed_lo: float
    needed_hi: float
    x_lo: float
    x_hi: float
    ctdivol_mgy: float
    dlp: float
    scan_length: float
    excess_length: float
    excess_dlp: float
    excess_fraction: float
    effective_dose: float
    excess_effective_dose: float
    overrange: float
    avoidable_length: float
    avoidable_dlp: float
    avoidable_effective_dose: float
    ssde_mgy: float  # NaN when the row has none
    # excess_coverage's evidence
    ev_avoidable_length: float
    ev_avoidable_dlp: float
    ev_avoidable_fraction: float
    ev_excess_length: float
    ev_excess_dlp: float
    ev_overrange: float
    ev_overrange_dlp: float
    # the proposal
    proposal_lo: float
    proposal_hi: float
    proposal_mas: float  # NaN when the row has no mAs
    proposal_ctdivol_mgy: float
    proposal_dlp: float
    dlp_saving: float
    effective_dose_saving: float


DIGITS: tuple[int, ...] = (
    2, 2, 2, 2, 4, 4, 2, 2, 4, 4, 5, 5, 2, 2, 4, 5, 4,
    3, 3, 4, 3, 3, 3, 3,
    2, 2, 2, 4, 4, 4, 5,
)  # fmt: skip
assert len(DIGITS) == len(Rounded._fields)
_SCALES: F64 = (10.0 ** np.array(DIGITS, np.float64)).reshape(-1, 1)


def _fraction(part: F64, whole: F64) -> F64:
    """RowResult.excess_fraction / avoidable_fraction by column: part / whole where whole > 0,
    else 0."""
    with np.errstate(all="ignore"):
        return np.where(whole > 0, part / whole, 0.0)


def _columns(
    needed: F64,
    res: F64,
    ctdivol: F64,
    ssde: F64,
    mas: F64,
    scale: F64,
) -> list[F64]:
    """The unrounded values of :class:`Rounded`'s fields, one column each (same operations in
    the same order as the code that reported them one by one)."""

    def c(name: str) -> F64:
        return res[:, COL[name]]

    return [
        needed[:, 0],
        needed[:, 1],
        c("x_lo"),
        c("x_hi"),
        ctdivol,
        c("dlp"),
        c("x_hi") - c("x_lo"),
        c("excess_length"),
        c("excess_dlp"),
        _fraction(c("excess_dlp"), c("dlp")),
        c("effective_dose"),
        c("excess_effective_dose"),
        c("overrange"),
        c("avoidable_length"),
        c("avoidable_dlp"),
        c("avoidable_effective_dose"),
        ssde,
        c("avoidable_length"),
        c("avoidable_dlp"),
        _fraction(c("avoidable_dlp"), c("dlp")),
        c("excess_length"),
        c("excess_dlp"),
        c("overrange"),
        ctdivol * c("overrange") / 10.0,
        c("proposal_lo"),
        c("proposal_hi"),
        mas * scale,
        ctdivol * scale,
        c("proposal_dlp"),
        c("dlp") - c("proposal_dlp"),
        c("effective_dose") - c("proposal_effective_dose"),
    ]


def _row_inputs(rows: Sequence[AcquisitionRow]) -> tuple[F64, F64, F64, F64]:
    nan = float("nan")
    needed = np.array([r.context.needed.z_mm for r in rows], np.float64).reshape(len(rows), 2)
    exposures = [r.exposure for r in rows]
    ctdivol = np.array([e.ctdivol_mgy for e in exposures], np.float64)
    ssde = np.array([nan if e.ssde_mgy is None else e.ssde_mgy for e in exposures], np.float64)
    mas = np.array([nan if e.mas is None else e.mas for e in exposures], np.float64)
    return needed, ctdivol, ssde, mas


def rounded_rows(rows: Sequence[AcquisitionRow], out: F64, scale: F64) -> list[Rounded]:
    """The :class:`Rounded` numbers of every row of a batch: ``out`` is the kernel's output
    (one row per row, :data:`optimiser.kernels.OUT_COLUMNS`, with any CTDIvol(z) results
    written in), ``scale`` each row's exposure scale as the kernel got it."""
    if not rows:
        return []
    needed, ctdivol, ssde, mas = _row_inputs(rows)
    with np.errstate(all="ignore"):  # unusable rows may hold NaN or inf: never reported
        columns = _columns(needed, out, ctdivol, ssde, mas, scale)
    done = _round_matrix(np.stack(columns), _SCALES, DIGITS)
    return [Rounded(*values) for values in zip(*done, strict=True)]


def rounded_one(row: AcquisitionRow, res: RowResult, scale: float) -> Rounded:
    """:class:`Rounded` for one row with ``round`` itself (the reference for the batch path)."""
    nan = float("nan")
    exposure, needed = row.exposure, row.context.needed.z_mm
    ctdivol = exposure.ctdivol_mgy
    mas = nan if exposure.mas is None else exposure.mas
    ssde = nan if exposure.ssde_mgy is None else exposure.ssde_mgy
    values = (
        needed[0], needed[1], res.x_lo, res.x_hi, ctdivol, res.dlp,
        res.x_hi - res.x_lo, res.excess_length, res.excess_dlp, res.excess_fraction,
        res.effective_dose, res.excess_effective_dose, res.overrange, res.avoidable_length,
        res.avoidable_dlp, res.avoidable_effective_dose, ssde,
        res.avoidable_length, res.avoidable_dlp, res.avoidable_fraction, res.excess_length,
        res.excess_dlp, res.overrange, ctdivol * res.overrange / 10.0,
        res.proposal_lo, res.proposal_hi, mas * scale, ctdivol * scale, res.proposal_dlp,
        res.dlp - res.proposal_dlp, res.effective_dose - res.proposal_effective_dose,
    )  # fmt: skip
    return Rounded(*(round(float(v), d) for v, d in zip(values, DIGITS, strict=True)))
