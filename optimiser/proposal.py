"""The optimised acquisition: range trimmed to N plus tolerance, exposure down to the reference.

Model step 6 of issue 4; the saving is what the acquisition would not have delivered. Reference
levels and tolerances come from the site library (../shared/reference/planning-ct.md sections 3
and 4); the trimmed range keeps the acquisition's own over-ranging (Schilham et al. 2010).
"""

from __future__ import annotations

from optimiser.assessment import Proposal
from optimiser.dose_model import AcquisitionRow
from optimiser.kernels import RowResult


def exposure_scale(row: AcquisitionRow) -> float:
    """Factor on CTDIvol (and mAs) that brings it down to the site reference when above it."""
    ref = row.protocol.reference_ctdivol_mgy
    if ref is None or not row.ctdivol_mgy > ref.value:
        return 1.0
    return ref.value / row.ctdivol_mgy


def build_proposal(row: AcquisitionRow, res: RowResult, scale: float) -> Proposal:
    changes: list[str] = []
    planned_lo = row.lo if row.is_planned else res.x_lo + 0.5 * res.overrange
    planned_hi = row.hi if row.is_planned else res.x_hi - 0.5 * res.overrange
    if abs(res.proposal_lo - planned_lo) > 0.5 or abs(res.proposal_hi - planned_hi) > 0.5:
        changes.append(
            f"range {res.proposal_lo:.0f} to {res.proposal_hi:.0f} mm: the needed range "
            f"{row.needed.z_mm[0]:.0f} to {row.needed.z_mm[1]:.0f} mm plus "
            f"{row.protocol.coverage.tolerance_mm:g} mm tolerance"
        )
    ctdivol = row.ctdivol_mgy * scale
    if scale < 1.0:
        changes.append(
            f"CTDIvol {row.ctdivol_mgy:.1f} -> {ctdivol:.1f} mGy (site reference), "
            f"tube current-time product scaled by {scale:.2f}"
        )
    return Proposal(
        z_mm=(round(res.proposal_lo, 2), round(res.proposal_hi, 2)),
        mas=None if row.mas is None else round(row.mas * scale, 2),
        ctdivol_mgy=round(ctdivol, 4),
        dlp_mgy_cm=round(res.proposal_dlp, 4),
        dlp_saving_mgy_cm=round(res.dlp - res.proposal_dlp, 4),
        effective_dose_saving_msv=round(res.effective_dose - res.proposal_effective_dose, 5),
        changes=changes,
    )
