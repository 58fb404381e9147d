"""Findings: what is wrong with one planning acquisition, each with the numbers behind it.

The checks follow ../shared/reference/planning-ct.md: section 1 (RCR: enough for planning and no
more; planning scans labelled as such; a diagnostic scan is a separate referral), section 3
(planning reference levels), section 7 (NEMA XR-25 Dose Check) and section 8 (diagnostic-grade
signatures). Thresholds come from the site library (``[thresholds]`` and ``[acquisition]``).
"""

from __future__ import annotations

from optimiser.assessment import Finding, FindingCode, Severity
from optimiser.dose_model import AcquisitionRow
from optimiser.kernels import RowResult
from protocols.library import GENERIC_SITE


def _finding(
    code: FindingCode,
    severity: Severity,
    message: str,
    **evidence: float | int | str | bool | None,
) -> Finding:
    return Finding(code=code, severity=severity, message=message, evidence=evidence)


# Table positions are set and reported to about a millimetre: a planned range passing N plus the
# tolerance by half a millimetre or less (e.g. a proposal's ends rounded to 0.01 mm) is on it.
PLANNING_PRECISION_MM = 0.5


def needed_is_guess(row: AcquisitionRow) -> bool:
    """N is a guess: the irradiated range was centred on it (no z, no matching plan), or it is
    the generic site's default length (no protocol event, or an unknown site without a
    target). Findings on a guessed N are info only (SPEC9 rule 1)."""
    return row.excess_is_lower_bound or (
        row.needed.basis == "site_default" and row.site == GENERIC_SITE
    )


def excess_coverage(row: AcquisitionRow, res: RowResult) -> Finding | None:
    """Coverage beyond the needed range N (planning-ct.md section 4; SPEC9 rule 1).

    Severity follows the *avoidable* excess only: the planned range beyond N +- the site's
    tolerance, as a fraction of the acquisition's DLP (site thresholds). Helical over-ranging
    outside N is unavoidable with the scanner's collimation and pitch: reported as info with its
    own number, never a warning. When N is a guess, info only and no excess claimed as a bound.
    """
    t = row.protocol.thresholds
    tol = row.protocol.coverage.tolerance_mm
    avoidable = res.avoidable_length
    over_dlp = row.ctdivol_mgy * res.overrange / 10.0
    needed = f"the {row.needed.z_mm[1] - row.needed.z_mm[0]:.0f} mm needed for {row.site} planning"
    over_text = (
        f"helical over-ranging adds {res.overrange:.0f} mm ({over_dlp:.1f} mGy.cm), unavoidable "
        "with this collimation and pitch"
        if res.overrange > PLANNING_PRECISION_MM
        else "no helical over-ranging"
    )
    evidence: dict[str, float | int | str | bool | None] = {
        "avoidable_excess_length_mm": round(avoidable, 3),
        "avoidable_excess_dlp_mgy_cm": round(res.avoidable_dlp, 3),
        "avoidable_fraction": round(res.avoidable_fraction, 4),
        "excess_length_mm": round(res.excess_length, 3),
        "excess_dlp_mgy_cm": round(res.excess_dlp, 3),
        "overranging_mm": round(res.overrange, 3),
        "overranging_dlp_mgy_cm": round(over_dlp, 3),
        "tolerance_mm": tol,
        "needed_is_guess": needed_is_guess(row),
        "warning_fraction": t.excess_coverage_warning_fraction,
        "alert_fraction": t.excess_coverage_alert_fraction,
    }
    if needed_is_guess(row):
        if not (avoidable > PLANNING_PRECISION_MM or res.excess_length > t.excess_coverage_info_mm):
            return None
        why = (
            "the report gives no z positions and no planned acquisition matches, so its range "
            "was centred on the needed range"
            if row.excess_is_lower_bound
            else f"the needed range is the {row.site} site's default "
            f"{row.needed.z_mm[1] - row.needed.z_mm[0]:.0f} mm (no protocol event or target)"
        )
        return _finding(
            "excess_coverage",
            "info",
            f"coverage not judged: {why}. {avoidable:.0f} mm of the planned range lie beyond "
            f"that range plus {tol:g} mm and {res.excess_length:.0f} mm of the irradiated "
            f"range outside it; {over_text}. Give the protocol event or structure set to "
            "assess the coverage.",
            **evidence,
        )
    if not avoidable > PLANNING_PRECISION_MM:
        # Within tolerance: only the helical over-ranging is worth a note.
        if not (
            res.overrange > PLANNING_PRECISION_MM and res.excess_length > t.excess_coverage_info_mm
        ):
            return None
        return _finding(
            "excess_coverage",
            "info",
            f"the planned range lies within {needed} plus {tol:g} mm; {over_text}: "
            f"{res.excess_length:.0f} mm irradiated outside the needed range "
            f"({res.excess_dlp:.1f} mGy.cm), none of it avoidable by planning.",
            **evidence,
        )
    fraction = res.avoidable_fraction
    severity: Severity = "info"
    if fraction >= t.excess_coverage_alert_fraction:
        severity = "alert"
    elif fraction >= t.excess_coverage_warning_fraction:
        severity = "warning"
    return _finding(
        "excess_coverage",
        severity,
        f"{avoidable:.0f} mm of the planned range lie beyond {needed} plus {tol:g} mm: "
        f"{res.avoidable_dlp:.1f} mGy.cm ({fraction:.0%} of the DLP) and "
        f"{res.avoidable_effective_dose:.2f} mSv avoidable; separately, {over_text}.",
        **evidence,
    )


def above_reference_level(row: AcquisitionRow, res: RowResult) -> Finding | None:
    """CTDIvol against the site's planning reference; failing that, the acquisition's DLP
    against the (whole-exam) DLP reference, which one acquisition alone should not exceed."""
    t = row.protocol.thresholds
    ref = row.protocol.reference_ctdivol_mgy
    if ref is not None and row.ctdivol_mgy > ref.value * t.above_reference_warning_ratio:
        ratio = row.ctdivol_mgy / ref.value
        severity: Severity = "alert" if ratio >= t.above_reference_alert_ratio else "warning"
        return _finding(
            "above_reference_level",
            severity,
            f"CTDIvol {row.ctdivol_mgy:.1f} mGy is {ratio:.2f} x the {row.site} planning "
            f"reference {ref.value:g} mGy ({ref.statistic}; {ref.source}).",
            quantity="ctdivol_mgy",
            value=row.ctdivol_mgy,
            reference=ref.value,
            ratio=round(ratio, 4),
            reference_source=ref.source,
        )
    ref_dlp = row.protocol.reference_dlp_mgy_cm
    if ref_dlp is not None and res.dlp > ref_dlp.value * t.above_reference_warning_ratio:
        ratio = res.dlp / ref_dlp.value
        severity = "alert" if ratio >= t.above_reference_alert_ratio else "warning"
        return _finding(
            "above_reference_level",
            severity,
            f"this acquisition's DLP {res.dlp:.0f} mGy.cm alone is {ratio:.2f} x the {row.site} "
            f"planning reference {ref_dlp.value:g} mGy.cm ({ref_dlp.statistic}; "
            f"{ref_dlp.source}).",
            quantity="dlp_mgy_cm",
            value=round(res.dlp, 3),
            reference=ref_dlp.value,
            ratio=round(ratio, 4),
            reference_source=ref_dlp.source,
        )
    return None


def thin_reconstruction(row: AcquisitionRow) -> Finding | None:
    minimum = row.protocol.acquisition.min_slice_thickness_mm
    if row.slice_thickness_mm is None or not row.slice_thickness_mm < minimum:
        return None
    return _finding(
        "thin_reconstruction",
        "warning",
        f"slice thickness {row.slice_thickness_mm:g} mm is below the {minimum:g} mm planning "
        f"minimum for {row.site}: a diagnostic-grade reconstruction.",
        slice_thickness_mm=row.slice_thickness_mm,
        min_slice_thickness_mm=minimum,
    )


def kv_not_calibrated(row: AcquisitionRow) -> Finding | None:
    calibrated = row.protocol.acquisition.calibrated_kvp
    # Exact membership first: nearly every kV is a calibrated one, and the scan of the
    # tolerance is then skipped (an exact match is within it, NaN matches neither).
    off = [
        kv
        for kv in row.kvp
        if kv not in calibrated and not any(abs(kv - c) < 0.5 for c in calibrated)
    ]
    if not off:
        return None
    wanted = ", ".join(f"{c:g}" for c in calibrated)
    return _finding(
        "kv_not_calibrated",
        "warning",
        f"tube voltage {', '.join(f'{kv:g}' for kv in off)} kV does not match the HU to electron "
        f"density calibration ({wanted} kV).",
        kvp=", ".join(f"{kv:g}" for kv in row.kvp),
        calibrated_kvp=wanted,
    )


def diagnostic_intent(row: AcquisitionRow) -> Finding | None:
    if row.diagnostic_intent is None:
        return None
    return _finding(
        "diagnostic_intent",
        "warning",
        f"{row.diagnostic_intent}: a diagnostic scan is a separate referral to radiology, "
        "not part of a planning scan.",
        reason=row.diagnostic_intent,
    )


def unlabelled_planning_scan(row: AcquisitionRow) -> Finding | None:
    if row.labelled_planning:
        return None
    return _finding(
        "unlabelled_planning_scan",
        "warning",
        "the study is not labelled as a planning scan: planning images on PACS must be "
        "clearly labelled as such.",
        labelled_planning=False,
    )


def dose_check_exceeded(row: AcquisitionRow) -> Finding | None:
    if row.dose_checks:
        kinds = [k for k, _ in row.dose_checks]
        severity: Severity = "alert" if "alert" in kinds else "warning"
        text = "; ".join(t for _, t in row.dose_checks)
        return _finding(
            "dose_check_exceeded",
            severity,
            f"the scanner's Dose Check recorded {len(kinds)} "
            f"{'alert' if severity == 'alert' else 'notification'}(s): {text}.",
            kinds=", ".join(kinds),
        )
    t = row.protocol.thresholds
    limit = (
        t.notification_ctdivol_head_mgy
        if (row.phantom or row.protocol.phantom) == "head"
        else t.notification_ctdivol_body_mgy
    )
    if row.input_kind == "protocol_event" and row.ctdivol_mgy > limit:
        return _finding(
            "dose_check_exceeded",
            "warning",
            f"predicted CTDIvol {row.ctdivol_mgy:.1f} mGy exceeds the {limit:g} mGy "
            "notification value.",
            ctdivol_mgy=row.ctdivol_mgy,
            notification_ctdivol_mgy=limit,
        )
    return None


def acquisition_findings(row: AcquisitionRow, res: RowResult) -> list[Finding]:
    """The single-acquisition findings, in a fixed order."""
    found = [
        excess_coverage(row, res),
        above_reference_level(row, res),
        thin_reconstruction(row),
        kv_not_calibrated(row),
        diagnostic_intent(row),
        unlabelled_planning_scan(row),
        dose_check_exceeded(row),
    ]
    return [f for f in found if f is not None]


def _overlap_fraction(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = min(a[1], b[1]) - max(a[0], b[0])
    shorter = min(a[1] - a[0], b[1] - b[0])
    if shorter <= 0:
        return 1.0 if inter >= 0 and a[0] <= b[1] and b[0] <= a[1] else 0.0
    return max(0.0, inter) / shorter


Previous = tuple[float, float, bool | None]  # (x_lo, x_hi, contrast) of an earlier acquisition


def study_findings(
    rows: list[AcquisitionRow], results: list[RowResult], previous: list[list[Previous]]
) -> dict[int, list[Finding]]:
    """Findings across acquisitions of one study: repeat and multiphase.

    ``previous[i]`` lists the earlier acquisitions of row i's study to compare it with (the
    earlier rows of the same protocol event; for dose reports, the study's earlier reported
    events, from this batch and from the study state). A later acquisition over a range an
    earlier one already covered (overlap at least ``repeat_overlap_fraction`` of the shorter)
    is a repeat when both have the same contrast phase and a multiphase acquisition when the
    phases differ (planning-ct.md section 8).
    """
    out: dict[int, list[Finding]] = {}
    for i, row in enumerate(rows):
        if not row.comparable_placement:
            continue
        t = row.protocol.thresholds
        rules = row.protocol.acquisition
        xi = (results[i].x_lo, results[i].x_hi)
        same = 0
        # Unknown contrast (None: a report without Procedure Context) is not a phase.
        phases: set[bool] = set() if row.contrast is None else {row.contrast}
        for lo, hi, contrast in previous[i]:
            if _overlap_fraction(xi, (lo, hi)) < t.repeat_overlap_fraction:
                continue
            if contrast == row.contrast:
                same += 1
            if contrast is not None:
                phases.add(contrast)
        found: list[Finding] = []
        if same + 1 > rules.allowed_acquisitions_per_range:
            found.append(
                _finding(
                    "repeat_acquisition",
                    "warning",
                    f"this acquisition repeats {same} earlier acquisition(s) over the same "
                    f"range with the same contrast phase (allowed per range for {row.site}: "
                    f"{rules.allowed_acquisitions_per_range}).",
                    earlier_over_same_range=same,
                    allowed_acquisitions_per_range=rules.allowed_acquisitions_per_range,
                )
            )
        n_phases = len(phases)
        if n_phases > rules.allowed_contrast_phases and row.contrast is not None:
            found.append(
                _finding(
                    "multiphase_contrast",
                    "warning",
                    f"{n_phases} contrast phases over one range (with and without contrast), "
                    f"more than the {rules.allowed_contrast_phases} allowed for {row.site} "
                    "planning.",
                    contrast_phases=n_phases,
                    allowed_contrast_phases=rules.allowed_contrast_phases,
                )
            )
        if found:
            out[i] = found
    return out
