"""The optimised acquisition: range trimmed to N plus tolerance, exposure down to the DRL.

Model step 6 of issue 4; the saving is what the acquisition would not have delivered. Reference
levels and tolerances come from the site library (../shared/reference/planning-ct.md sections 3,
4 and 9); the proposed range always contains the needed range N and passes it by at most the
tolerance (severity rule 3), keeping the acquisition's own over-ranging (Schilham et al. 2010).
A reference level is an investigation level, not a goal (ICRP Publication 135): exposure is
scaled down only to a 75th-percentile-type level (a DRL), never to a median or mean, and never
below the site's exposure floor (``[image_quality] min_ctdivol_mgy``: a published centre's median
planning CTDIvol, not an image-quality threshold).
"""

from __future__ import annotations

from optimiser.assessment import Proposal, trusted
from optimiser.dose_model import AcquisitionRow
from optimiser.findings import OWN_CLASS_TYPES
from optimiser.kernels import RowResult
from optimiser.rounding import Rounded, rounded_one


def exposure_scale(row: AcquisitionRow) -> float:
    """Factor on CTDIvol (and mAs) that brings it down to at most the site's CTDIvol DRL when
    above it, never below the exposure floor (a published centre's median planning CTDIvol).
    1.0 (no change) against a typical value only, on the generic site (no level applies), for
    stationary / free acquisitions (their own dose class) and without a floor."""
    protocol = row.context.protocol
    drl = protocol.drl("ctdivol_mgy")
    floor = protocol.image_quality
    ctdivol = row.exposure.ctdivol_mgy
    if (
        drl is None
        or floor is None
        or row.identity.acquisition_type in OWN_CLASS_TYPES
        or not ctdivol > drl.value
    ):
        return 1.0
    target = max(drl.value, floor.min_ctdivol_mgy)
    return min(1.0, target / ctdivol)


def _typical_review(row: AcquisitionRow) -> str | None:
    """Without a CTDIvol DRL, a CTDIvol at or above the typical ratio x the typical value is
    clearly abnormal (a warning) but gives no level to scale to: the proposal asks for a review
    of the exposure and proposes no number (a median is not a goal, ICRP 135)."""
    protocol = row.context.protocol
    ref = protocol.reference_ctdivol_mgy
    ratio = protocol.thresholds.above_typical_warning_ratio
    ctdivol = row.exposure.ctdivol_mgy
    if (
        ref is None
        or ref.kind != "typical"
        or row.identity.acquisition_type in OWN_CLASS_TYPES
        or ctdivol < ratio * ref.value
    ):
        return None
    return (
        f"review exposure: CTDIvol {ctdivol:.1f} mGy is {ctdivol / ref.value:.2f} "
        f"x the {row.context.site} typical value {ref.value:g} mGy ({ref.statistic}); no DRL "
        "applies, so no exposure is proposed"
    )


def _range_change(row: AcquisitionRow, res: RowResult) -> str | None:
    """The range part of the proposal: the planned range within the needed range N plus the
    site tolerance, never inside N (severity rule 3); None when the planned range already is."""
    n_lo, n_hi = row.context.needed.z_mm
    tol = row.context.protocol.coverage.tolerance_mm
    lo, hi = res.proposal_lo, res.proposal_hi
    if abs(lo - res.planned_lo) <= 0.5 and abs(hi - res.planned_hi) <= 0.5:
        return None
    text = (
        f"range {lo:.0f} to {hi:.0f} mm (planned {res.planned_lo:.0f} to {res.planned_hi:.0f} "
        f"mm): covers the needed range {n_lo:.0f} to {n_hi:.0f} mm and passes it by at most "
        f"{tol:g} mm"
    )
    covered = max(0.0, min(res.planned_hi, n_hi) - max(res.planned_lo, n_lo))
    missed = (n_hi - n_lo) - covered
    if missed > 0.5:
        text += f"; the planned range left {missed:.0f} mm of the needed range out"
    return text


def build_proposal(
    row: AcquisitionRow, res: RowResult, scale: float, rd: Rounded | None = None
) -> Proposal:
    """The proposal for one row (``rd``: its rounded numbers, when the batch has them)."""
    if rd is None:
        rd = rounded_one(row, res, scale)
    changes: list[str] = []
    range_change = _range_change(row, res)
    if range_change is not None:
        changes.append(range_change)
    actual = row.exposure.ctdivol_mgy
    ctdivol = actual * scale
    if scale < 1.0:
        drl = row.context.protocol.drl("ctdivol_mgy")
        level = f"the {row.context.site} DRL {drl.value:g} mGy" if drl is not None else "the DRL"
        changes.append(
            f"review exposure: CTDIvol {actual:.1f} -> {ctdivol:.1f} mGy, at most "
            f"{level} (an investigation level, not a target), tube current-time product "
            f"scaled by {scale:.2f}; planning image quality must be confirmed"
        )
    else:
        review = _typical_review(row)
        if review is not None:
            changes.append(review)
    # Trusted (optimiser.assessment.trusted): every number is a float rounded as round() does.
    return trusted(
        Proposal,
        {
            "z_mm": (rd.proposal_lo, rd.proposal_hi),
            "mas": None if row.exposure.mas is None else rd.proposal_mas,
            "ctdivol_mgy": rd.proposal_ctdivol_mgy,
            "dlp_mgy_cm": rd.proposal_dlp,
            "dlp_saving_mgy_cm": rd.dlp_saving,
            "effective_dose_saving_msv": rd.effective_dose_saving,
            "changes": changes,
        },
    )
