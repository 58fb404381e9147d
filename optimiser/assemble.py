"""Assembly: a kernel row and its result become an :class:`~optimiser.assessment.Assessment`
with its findings and proposal (the last stage of :mod:`optimiser.pipeline`).

The findings and proposal rules and their sources are in :mod:`optimiser.findings` and
:mod:`optimiser.proposal` (../shared/reference/planning-ct.md sections 1, 3, 4, 7 and 8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from optimiser.assessment import Assessment, Finding, Proposal, assessment_id, trusted
from optimiser.dose_model import AcquisitionRow
from optimiser.findings import acquisition_findings, needed_is_guess
from optimiser.kernels import RowResult
from optimiser.proposal import build_proposal, exposure_scale
from optimiser.rounding import Rounded, rounded_one


def _r(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


@dataclass(frozen=True, slots=True)
class Measures:
    """The numbers of one assessment, rounded for output."""

    needed_z_mm: tuple[float, float] | None
    irradiated_z_mm: tuple[float, float] | None
    ctdivol_mgy: float | None
    dlp_mgy_cm: float
    scan_length_mm: float = 0.0
    excess_length_mm: float = 0.0
    excess_dlp_mgy_cm: float = 0.0
    excess_fraction: float = 0.0
    effective_dose_msv: float = 0.0
    excess_effective_dose_msv: float = 0.0
    overranging_mm: float = 0.0
    avoidable_excess_length_mm: float = 0.0
    avoidable_excess_dlp_mgy_cm: float = 0.0
    avoidable_effective_dose_msv: float = 0.0
    ssde_mgy: float | None = None


def _measures(row: AcquisitionRow, rd: Rounded) -> Measures:
    """The numbers of one modelled row (``rd``: its rounded numbers). Avoidable dose, coverage
    part: the planned range beyond the needed range plus the site tolerance (the kernel's
    avoidable columns; over-ranging is never avoidable by planning, severity rules 1 and 4).
    None is claimed when N is a guess."""
    guess = needed_is_guess(row)
    return Measures(
        needed_z_mm=(rd.needed_lo, rd.needed_hi),
        irradiated_z_mm=(rd.x_lo, rd.x_hi),
        ctdivol_mgy=rd.ctdivol_mgy,
        dlp_mgy_cm=rd.dlp,
        scan_length_mm=rd.scan_length,
        excess_length_mm=rd.excess_length,
        excess_dlp_mgy_cm=rd.excess_dlp,
        excess_fraction=rd.excess_fraction,
        effective_dose_msv=rd.effective_dose,
        excess_effective_dose_msv=rd.excess_effective_dose,
        overranging_mm=rd.overrange,
        avoidable_excess_length_mm=0.0 if guess else rd.avoidable_length,
        avoidable_excess_dlp_mgy_cm=0.0 if guess else rd.avoidable_dlp,
        avoidable_effective_dose_msv=0.0 if guess else rd.avoidable_effective_dose,
        ssde_mgy=None if row.exposure.ssde_mgy is None else rd.ssde_mgy,
    )


def _build(
    row: AcquisitionRow,
    m: Measures,
    findings: list[Finding],
    proposal: Proposal | None,
    notes: list[str],
) -> Assessment:
    """The one place an Assessment is constructed: identity from the row, numbers from ``m``."""
    identity, geometry = row.identity, row.geometry
    key = (
        str(identity.acquisition_index)
        if identity.acquisition_index is not None
        else str(identity.irradiation_event_uid)
    )
    # Trusted (optimiser.assessment.trusted): identity from the validated input, numbers from
    # ``m`` (floats from round), findings and proposal built trusted from the same rules.
    return trusted(
        Assessment,
        {
            "assessment_id": assessment_id(identity.input_kind, identity.input_id, key),
            "input_kind": identity.input_kind,
            "input_id": identity.input_id,
            "study_instance_uid": identity.study_instance_uid,
            "accession_number": identity.accession_number,
            "acquisition_index": identity.acquisition_index,
            "irradiation_event_uid": identity.irradiation_event_uid,
            "site": row.context.site,
            "acquisition_type": identity.acquisition_type,
            "description": identity.description,
            "scanner_model": identity.scanner_model,
            "station_name": identity.station_name,
            "performed_at": identity.performed_at,
            "needed_z_mm": m.needed_z_mm,
            "needed_basis": row.context.needed.basis,
            "irradiated_z_mm": m.irradiated_z_mm,
            "placement": geometry.placement,
            "excess_is_lower_bound": geometry.excess_is_lower_bound,
            "ctdivol_mgy": m.ctdivol_mgy,
            "dlp_mgy_cm": m.dlp_mgy_cm,
            "scan_length_mm": m.scan_length_mm,
            "excess_length_mm": m.excess_length_mm,
            "excess_dlp_mgy_cm": m.excess_dlp_mgy_cm,
            "excess_fraction": m.excess_fraction,
            "effective_dose_msv": m.effective_dose_msv,
            "excess_effective_dose_msv": m.excess_effective_dose_msv,
            "overranging_mm": m.overranging_mm,
            "avoidable_excess_length_mm": m.avoidable_excess_length_mm,
            "avoidable_excess_dlp_mgy_cm": m.avoidable_excess_dlp_mgy_cm,
            "avoidable_effective_dose_msv": m.avoidable_effective_dose_msv,
            "ssde_mgy": m.ssde_mgy,
            "water_equivalent_diameter_mm": row.exposure.water_equivalent_diameter_mm,
            "findings": findings,
            "proposal": proposal,
            "notes": notes,
        },
        _ASSESSMENT_DEFAULTS,
    )


# The one field an assessment leaves at its default (not in its fields set, like validation).
_ASSESSMENT_DEFAULTS = {"schema_": "lowdose.assessment/1"}


def assessment(
    row: AcquisitionRow, res: RowResult, cross: list[Finding], rd: Rounded | None = None
) -> Assessment:
    """The assessment of one modelled row; ``cross`` holds its study-level findings, ``rd``
    its rounded numbers when the batch rounded them at once (:func:`rounded_rows`)."""
    if row.unusable is not None:
        return unmodelled(row)
    scale = exposure_scale(row)
    if rd is None:
        rd = rounded_one(row, res, scale)
    notes = list(dict.fromkeys(row.context.notes))
    reported = row.exposure.reported_dlp_mgy_cm
    if reported is not None and reported > 0 and abs(res.dlp - reported) > 0.01 * reported:
        notes.append(
            f"modelled DLP {res.dlp:.1f} mGy.cm differs from the reported "
            f"{reported:.1f} mGy.cm by more than 1%"
        )
    if res.overrange_extrapolated:
        fitted = row.context.protocol.overranging.fitted_max_collimation_mm
        notes.append(
            f"helical over-ranging {res.overrange:.0f} mm is the model extrapolated beyond the "
            f"{fitted:g} mm collimation it was fitted on (16-slice scanners; van der Molen & "
            "Geleijns 2007): findings resting on it are info only"
        )
    findings = acquisition_findings(row, res, rd)
    findings.extend(cross)
    m = _measures(row, rd)
    surplus = [f for f in cross if is_surplus(f)]
    if surplus:
        return _build(row, _surplus(m), findings, _omit(row, m, surplus), notes)
    proposal = build_proposal(row, res, scale, rd)
    return _build(row, m, findings, proposal, notes)


# Study findings that make an acquisition surplus: the later one of a repeat or an extra phase.
SURPLUS_CODES = frozenset({"repeat_acquisition", "multiphase_contrast"})


def is_surplus(finding: Finding) -> bool:
    """A repeat or an extra contrast phase whose omission keeps the needed range covered
    (:func:`optimiser.study_findings.study_findings` says so in the finding's evidence), unless the
    repeat records its reason (evidence ``repeat_reason``): a justified repeat was needed once
    the earlier acquisition was spoilt, so it is neither avoidable nor proposed for omission."""
    return (
        finding.code in SURPLUS_CODES
        and finding.evidence.get("omission_keeps_needed_range") is True
        and "repeat_reason" not in finding.evidence
    )


def _omit(row: AcquisitionRow, m: Measures, why: list[Finding]) -> Proposal:
    """The proposal for a surplus acquisition: omit it, saving all of its DLP and effective
    dose. ``z_mm`` keeps the acquisition's own range (planned, else irradiated) for reference;
    mAs, CTDIvol and DLP are 0."""
    codes = " and ".join(dict.fromkeys(f.code.replace("_", " ") for f in why))
    g = row.geometry
    own = (g.lo_mm, g.hi_mm) if g.is_planned or m.irradiated_z_mm is None else m.irradiated_z_mm
    return trusted(  # trusted: floats from _r and constants (optimiser.assessment.trusted)
        Proposal,
        {
            "z_mm": (_r(own[0], 2), _r(own[1], 2)),
            "mas": 0.0,
            "ctdivol_mgy": 0.0,
            "dlp_mgy_cm": 0.0,
            "dlp_saving_mgy_cm": m.dlp_mgy_cm,
            "effective_dose_saving_msv": m.effective_dose_msv,
            "changes": [
                f"omit this acquisition: {codes} over a range the earlier acquisition(s) already "
                f"cover; its DLP {m.dlp_mgy_cm:.1f} mGy.cm and effective dose "
                f"{m.effective_dose_msv:.2f} mSv are avoidable"
            ],
        },
    )


def _surplus(m: Measures) -> Measures:
    """A surplus acquisition is avoidable as a whole (issue 9: repeats and extra phases are
    avoidable dose): its DLP, effective dose and irradiated length replace the coverage part of
    the avoidable totals, which they contain, so nothing is counted twice."""
    return replace(
        m,
        avoidable_excess_length_mm=m.scan_length_mm,
        avoidable_excess_dlp_mgy_cm=m.dlp_mgy_cm,
        avoidable_effective_dose_msv=m.effective_dose_msv,
    )


def unmodelled(row: AcquisitionRow) -> Assessment:
    """The assessment of a row whose numbers cannot be modelled: the reported DLP only."""
    reported = row.exposure.reported_dlp_mgy_cm
    dlp = reported if reported is not None and math.isfinite(reported) else 0.0
    m = Measures(needed_z_mm=None, irradiated_z_mm=None, ctdivol_mgy=None, dlp_mgy_cm=_r(dlp))
    notes = [*dict.fromkeys(row.context.notes), f"not modelled: {row.unusable}"]
    return _build(row, m, [], None, notes)
