"""Findings: what is wrong with one planning acquisition, each with the numbers behind it.

The checks follow ../shared/reference/planning-ct.md: section 1 (RCR: enough for planning and no
more; planning scans labelled as such; a diagnostic scan is a separate referral), section 3
(planning reference levels), section 7 (NEMA XR-25 Dose Check) and section 8 (diagnostic-grade
signatures). Thresholds come from the site library (``[thresholds]`` and ``[acquisition]``).
"""

from __future__ import annotations

from optimiser.assessment import Finding, FindingCode, Severity
from optimiser.dose_model import AcquisitionRow
from optimiser.events import ContrastPhase, ZRange, is_enhanced, phase_name
from optimiser.kernels import RowResult


def _finding(
    code: FindingCode,
    severity: Severity,
    message: str,
    **evidence: float | int | str | bool | None,
) -> Finding:
    return Finding(code=code, severity=severity, message=message, evidence=evidence)


def excess_coverage(row: AcquisitionRow, res: RowResult) -> Finding | None:
    t = row.protocol.thresholds
    if not res.excess_length > t.excess_coverage_info_mm:
        return None
    fraction = res.excess_fraction
    severity: Severity = "info"
    if fraction >= t.excess_coverage_alert_fraction:
        severity = "alert"
    elif fraction >= t.excess_coverage_warning_fraction:
        severity = "warning"
    bound = "at least " if row.excess_is_lower_bound else ""
    return _finding(
        "excess_coverage",
        severity,
        f"{res.excess_length:.0f} mm of the {res.x_hi - res.x_lo:.0f} mm irradiated lie outside "
        f"the {row.needed.z_mm[1] - row.needed.z_mm[0]:.0f} mm needed for {row.site} planning: "
        f"{bound}{res.excess_dlp:.1f} mGy.cm ({fraction:.0%} of the DLP) and "
        f"{res.excess_effective_dose:.2f} mSv in excess.",
        excess_length_mm=round(res.excess_length, 3),
        excess_dlp_mgy_cm=round(res.excess_dlp, 3),
        excess_fraction=round(fraction, 4),
        excess_is_lower_bound=row.excess_is_lower_bound,
        warning_fraction=t.excess_coverage_warning_fraction,
        alert_fraction=t.excess_coverage_alert_fraction,
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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def dose_check_exceeded(row: AcquisitionRow) -> Finding | None:
    """A Dose Check value exceeded (NEMA XR-25; planning-ct.md sections 7 and 9).

    ``row.dose_checks`` holds only the report's exceedances (a forward estimate at or above the
    configured value, a reason for proceeding, an authorising person): an exceeded alert value
    is an alert, an exceeded notification value a warning. Configuration alone never reaches
    here. For a protocol event, a predicted CTDIvol above the AAPM 2011 notification value of
    the acquisition's phantom (the site's when the event gives none) is a warning.
    """
    if row.dose_checks:
        alerts = sum(1 for k, _ in row.dose_checks if k == "alert")
        notifications = len(row.dose_checks) - alerts
        severity: Severity = "alert" if alerts else "warning"
        text = "; ".join(t for _, t in row.dose_checks)
        return _finding(
            "dose_check_exceeded",
            severity,
            f"the scanner's Dose Check recorded {_plural(alerts, 'alert')} and "
            f"{_plural(notifications, 'notification')} exceeded ({text}).",
            alerts=alerts,
            notifications=notifications,
        )
    t = row.protocol.thresholds
    phantom = row.phantom or row.protocol.phantom
    limit = (
        t.notification_ctdivol_head_mgy if phantom == "head" else t.notification_ctdivol_body_mgy
    )
    if row.input_kind == "protocol_event" and row.ctdivol_mgy > limit:
        return _finding(
            "dose_check_exceeded",
            "warning",
            f"predicted CTDIvol {row.ctdivol_mgy:.1f} mGy exceeds the {limit:g} mGy "
            f"{phantom} notification value (AAPM 2011): the console will warn before the scan.",
            ctdivol_mgy=row.ctdivol_mgy,
            notification_ctdivol_mgy=limit,
            phantom=phantom,
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


# A shortfall below this (mm) is rounding (report lengths are DLP / CTDIvol), not anatomy.
COVER_SLACK_MM = 1.0


def _covered(x: tuple[float, float], needed: tuple[float, float], earlier: list[ZRange]) -> bool:
    """True when the earlier ranges together cover the part of ``x`` inside the needed range
    (within :data:`COVER_SLACK_MM`): omitting ``x`` then loses no anatomy planning needs. The
    ranges compared are irradiated ranges on both sides (like with like: each includes its
    acquisition's over-ranging)."""
    lo, hi = max(x[0], needed[0]), min(x[1], needed[1])
    if hi <= lo:
        return True  # nothing of it lies in the needed range
    reach = lo
    for e_lo, e_hi in sorted(earlier):
        if e_lo > reach + COVER_SLACK_MM:
            break
        reach = max(reach, e_hi)
    return reach >= hi - COVER_SLACK_MM


# (x_lo, x_hi, contrast phase) of an earlier acquisition; None: phase unknown.
Previous = tuple[float, float, ContrastPhase | None]


def study_findings(
    rows: list[AcquisitionRow], results: list[RowResult], previous: list[list[Previous]]
) -> dict[int, list[Finding]]:
    """Findings across acquisitions of one study: repeat and multiphase.

    ``previous[i]`` lists the earlier acquisitions of row i's study to compare it with (the
    earlier rows of the same protocol event; for dose reports, the study's earlier reported
    events, from this batch and from the study state). Over one range (overlap at least
    ``repeat_overlap_fraction`` of the shorter), the contrast phases are the enhanced
    acquisitions, each its own phase, plus one if any is non-contrast (planning-ct.md section 8:
    several contrast phases, or a non-contrast plus contrast pair, are diagnostic-grade signs).
    A later acquisition that adds a phase beyond ``allowed_contrast_phases`` is
    ``multiphase_contrast``; two enhanced acquisitions are never a repeat. A later non-contrast
    acquisition over an earlier non-contrast one (or unknown over unknown) beyond
    ``allowed_acquisitions_per_range`` is ``repeat_acquisition``. An unknown phase (a report
    without Procedure Context) is compared with unknown phases only.
    """
    out: dict[int, list[Finding]] = {}
    for i, row in enumerate(rows):
        if not row.comparable_placement:
            continue
        t = row.protocol.thresholds
        rules = row.protocol.acquisition
        xi = (results[i].x_lo, results[i].x_hi)
        overlapping = [
            (lo, hi, c)
            for lo, hi, c in previous[i]
            if _overlap_fraction(xi, (lo, hi)) >= t.repeat_overlap_fraction
        ]
        over = [c for _, _, c in overlapping]
        keeps = _covered(xi, row.needed.z_mm, [(lo, hi) for lo, hi, _ in overlapping])
        omission = (
            " Omitting it keeps the needed range covered by the earlier acquisition(s)."
            if keeps
            else " The earlier acquisition(s) do not cover all of its part of the needed range: "
            "not proposed for omission."
        )
        group = [*over, row.contrast]
        enhanced = [c for c in group if is_enhanced(c)]
        plain = "none" in group
        n_phases = len(enhanced) + (1 if plain else 0)
        found: list[Finding] = []
        # Only an acquisition that is itself a new phase is the surplus one: an enhanced one, or
        # the first non-contrast one over the range.
        adds_phase = is_enhanced(row.contrast) or (row.contrast == "none" and "none" not in over)
        if adds_phase and n_phases > rules.allowed_contrast_phases:
            named = ([phase_name("none")] if plain else []) + [phase_name(c) for c in enhanced]
            found.append(
                _finding(
                    "multiphase_contrast",
                    "warning",
                    f"{n_phases} contrast phases over one range ({', '.join(named)}), more than "
                    f"the {rules.allowed_contrast_phases} allowed for {row.site} planning: this "
                    f"{phase_name(row.contrast)} acquisition is an extra phase.{omission}",
                    contrast_phases=n_phases,
                    phases=", ".join(named),
                    allowed_contrast_phases=rules.allowed_contrast_phases,
                    omission_keeps_needed_range=keeps,
                )
            )
        same = 0 if is_enhanced(row.contrast) else sum(1 for c in over if c == row.contrast)
        if same + 1 > rules.allowed_acquisitions_per_range:
            found.append(
                _finding(
                    "repeat_acquisition",
                    "warning",
                    f"this {phase_name(row.contrast)} acquisition repeats {same} earlier "
                    f"{phase_name(row.contrast)} acquisition(s) over the same range (allowed "
                    f"per range for {row.site}: {rules.allowed_acquisitions_per_range})."
                    f"{omission}",
                    earlier_over_same_range=same,
                    allowed_acquisitions_per_range=rules.allowed_acquisitions_per_range,
                    omission_keeps_needed_range=keeps,
                )
            )
        if found:
            out[i] = found
    return out
