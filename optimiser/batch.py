"""Batch packing: the rows of one pipeline batch into the kernel's struct-of-arrays input, one
kernel call, and the kernel's output back as one :class:`~optimiser.kernels.RowResult` per
row (with CTDIvol(z) profiles from CT images where a study has them).

Rows whose numbers cannot be modelled (absurd table positions or CTDIvol) are packed as empty
zero-length rows, so one bad message never stops a batch; :func:`unusable` says why, and the
assessment reports it. Sources of the model: :mod:`optimiser.dose_model`,
:mod:`optimiser.kernels` (../shared/reference/planning-ct.md sections 4 to 6).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from optimiser.dose_model import AcquisitionRow, row_profiles
from optimiser.findings import OWN_CLASS_TYPES
from optimiser.kernels import (
    MAX_ABS_Z_MM,
    OUT_COLUMNS,
    BatchInput,
    RowResult,
    SiteTables,
    assess_batch,
    results_of,
)
from optimiser.profile_kernel import profile_batch
from optimiser.proposal import exposure_scale

F64 = npt.NDArray[np.float64]
# Study Instance UID -> (image z, per-image CTDIvol or tube current): CTDIvol(z).
DoseProfiles = dict[str, tuple[F64, F64]]

# CTDIvol beyond this is not a CT exposure (the AAPM alert value is 1000 mGy accumulated).
MAX_CTDIVOL_MGY = 1.0e5


def unusable(row: AcquisitionRow) -> str | None:
    """Why the row's numbers cannot be modelled (field, value, rule), or None when they can."""
    # ``not abs(v) <= limit`` also holds for NaN and infinities (every comparison with NaN is
    # False), so each value costs one comparison.
    geometry, needed = row.geometry, row.context.needed.z_mm
    for name, value in (
        ("z range low end", geometry.lo_mm),
        ("z range high end", geometry.hi_mm),
        ("needed range low end", needed[0]),
        ("needed range high end", needed[1]),
    ):
        if not abs(value) <= MAX_ABS_Z_MM:
            return (
                f"{name} = {value!r} mm is not a table position (finite, within "
                f"{MAX_ABS_Z_MM:g} mm); fix the feed's z values"
            )
    ctdivol = row.exposure.ctdivol_mgy
    if not 0 <= ctdivol <= MAX_CTDIVOL_MGY:
        return (
            f"CTDIvol = {ctdivol!r} mGy is outside 0..{MAX_CTDIVOL_MGY:g} mGy; "
            "fix the feed's CTDIvol"
        )
    for name, opt in (
        ("total collimation", geometry.total_collimation_mm),
        ("pitch", geometry.pitch_factor),
    ):
        if opt is not None and not math.isfinite(opt):
            return f"{name} = {opt!r} is not finite; send a number or leave it out"
    return None


def pack(rows: list[AcquisitionRow], site_index: dict[str, int]) -> BatchInput:
    """The kernel input of ``rows`` (``site_index``: site id -> row of the site tables).

    Columns are gathered as lists and converted once: per-element numpy stores cost about a
    microsecond each, a dozen per row. Unusable rows keep the empty-batch defaults.
    """
    n = len(rows)
    nan = math.nan
    lo, hi, planned, helical = [0.0] * n, [0.0] * n, [0] * n, [0] * n
    collimation, pitch, overrange, reduction = [nan] * n, [nan] * n, [nan] * n, [nan] * n
    n_lo, n_hi, ctdivol, scales, tolerance = [0.0] * n, [0.0] * n, [0.0] * n, [1.0] * n, [0.0] * n
    site, keep = [0] * n, [0] * n
    for i, row in enumerate(rows):
        context = row.context
        site[i] = site_index[context.site]
        if row.unusable is not None:
            continue
        g = row.geometry
        lo[i] = g.lo_mm
        hi[i] = g.hi_mm
        planned[i] = g.is_planned
        helical[i] = g.helical
        if g.total_collimation_mm is not None:
            collimation[i] = g.total_collimation_mm
        if g.pitch_factor is not None:
            pitch[i] = g.pitch_factor
        if g.known_overrange_mm is not None:
            overrange[i] = g.known_overrange_mm
        protocol = context.protocol
        # A listed scanner model's own reduction; NaN = the site's rule (its reduction, with
        # the wide-beam bound beyond the fitted collimation; optimiser.kernels).
        own = protocol.overranging.model_reduction(row.identity.scanner_model)
        if own is not None:
            reduction[i] = own
        n_lo[i], n_hi[i] = context.needed.z_mm
        ctdivol[i] = row.exposure.ctdivol_mgy
        scales[i] = exposure_scale(row)
        tolerance[i] = protocol.coverage.tolerance_mm
        keep[i] = row.identity.acquisition_type in OWN_CLASS_TYPES
    f64, i8 = np.float64, np.int8
    return BatchInput(
        lo=np.array(lo, f64),
        hi=np.array(hi, f64),
        is_planned=np.array(planned, i8),
        helical=np.array(helical, i8),
        collimation_mm=np.array(collimation, f64),
        pitch=np.array(pitch, f64),
        overrange_mm=np.array(overrange, f64),
        dynamic_reduction=np.array(reduction, f64),
        n_lo=np.array(n_lo, f64),
        n_hi=np.array(n_hi, f64),
        ctdivol_mgy=np.array(ctdivol, f64),
        scale=np.array(scales, f64),
        tolerance_mm=np.array(tolerance, f64),
        site=np.array(site, np.int64),
        keep_range=np.array(keep, i8),
    )


class Run(NamedTuple):
    """One batch's kernel results: the rows (those given, each with CTDIvol(z) from CT images
    replaced by one noting it), one :class:`RowResult` per row, the same numbers as the
    kernel's output array (:data:`optimiser.kernels.OUT_COLUMNS`), and each row's exposure
    scale as the kernel got it."""

    rows: list[AcquisitionRow]
    results: list[RowResult]
    out: F64
    scale: F64


def run(
    rows: list[AcquisitionRow],
    site_index: dict[str, int],
    tables: SiteTables,
    dose_profiles: DoseProfiles,
) -> Run:
    """Assess ``rows`` in one kernel call; one result per row, in order."""
    batch = pack(rows, site_index)
    out = assess_batch(batch, tables)
    results = results_of(out)
    if dose_profiles:
        rows = list(rows)  # the caller's list stays as it was
        for i in _apply_profiles(rows, results, batch.scale, site_index, tables, dose_profiles):
            out[i] = [getattr(results[i], name) for name in OUT_COLUMNS]
    return Run(rows, results, out, batch.scale)


def _apply_profiles(
    rows: list[AcquisitionRow],
    results: list[RowResult],
    scales: F64,
    site_index: dict[str, int],
    tables: SiteTables,
    dose_profiles: DoseProfiles,
) -> list[int]:
    """Where CT images gave CTDIvol(z), integrate it instead of a constant CTDIvol: one
    profile-kernel call for every such row of the batch (actual and proposed ranges). Returns
    the rows whose results it replaced, each replaced in ``rows`` too by one with a note."""
    which = [
        i
        for i, row in enumerate(rows)
        if row.identity.study_instance_uid in dose_profiles and row.unusable is None
    ]
    if not which:
        return []
    profiles = []
    for i in which:
        z, w = dose_profiles[rows[i].identity.study_instance_uid]
        ctdivol = rows[i].exposure.ctdivol_mgy
        profiles.extend(row_profiles(z, w, ctdivol, float(scales[i]), results[i]))
    n_lo = np.repeat([rows[i].context.needed.z_mm[0] for i in which], 2)
    n_hi = np.repeat([rows[i].context.needed.z_mm[1] for i in which], 2)
    sites = np.repeat([site_index[rows[i].context.site] for i in which], 2)
    out = profile_batch(profiles, n_lo, n_hi, sites, tables)
    replaced = []
    for k, i in enumerate(which):
        actual, proposed = out[2 * k], out[2 * k + 1]
        if np.isnan(actual).any() or np.isnan(proposed).any():
            continue
        replaced.append(i)
        results[i] = replace(
            results[i],
            dlp=float(actual[0]),
            excess_dlp=float(actual[1]),
            effective_dose=float(actual[2]),
            excess_effective_dose=float(actual[3]),
            proposal_dlp=float(proposed[0]),
            proposal_effective_dose=float(proposed[2]),
        )
        context = rows[i].context
        rows[i] = replace(rows[i], context=context._replace(notes=(*context.notes, _PROFILE_NOTE)))
    return replaced


_PROFILE_NOTE = (
    "CTDIvol(z) follows the per-image CTDIvol or tube current of the study's CT images (mean "
    "kept at the acquisition's CTDIvol)"
)
