"""The optimised acquisition: range trimmed to N plus tolerance, exposure down to the reference.

Model step 6 of issue 4; the saving is what the acquisition would not have delivered. Reference
levels and tolerances come from the site library (../shared/reference/planning-ct.md sections 3
and 4); the proposed range always contains the needed range N and passes it by at most the
tolerance (SPEC9 rule 3), keeping the acquisition's own over-ranging (Schilham et al. 2010).
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


def _range_change(row: AcquisitionRow, res: RowResult) -> str | None:
    """The range part of the proposal: the planned range within the needed range N plus the
    site tolerance, never inside N (SPEC9 rule 3); None when the planned range already is."""
    n_lo, n_hi = row.needed.z_mm
    tol = row.protocol.coverage.tolerance_mm
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


def build_proposal(row: AcquisitionRow, res: RowResult, scale: float) -> Proposal:
    changes: list[str] = []
    range_change = _range_change(row, res)
    if range_change is not None:
        changes.append(range_change)
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
