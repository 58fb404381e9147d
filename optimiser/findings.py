"""Findings: what is wrong with one planning acquisition, each with the numbers behind it.

The checks follow ../shared/reference/planning-ct.md: section 1 (RCR: enough for planning and no
more; planning scans labelled as such; a diagnostic scan is a separate referral), section 3
(planning reference levels), section 7 (NEMA XR-25 Dose Check) and section 8 (diagnostic-grade
signatures). Thresholds come from the site library (``[thresholds]`` and ``[acquisition]``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from optimiser.assessment import SEVERITY_RANK, Finding, Severity, trusted
from optimiser.dose_model import AcquisitionRow
from optimiser.finding_codes import FindingCode
from optimiser.kernels import RowResult
from optimiser.rounding import Rounded, rounded_one
from protocols.library import SiteProtocol
from protocols.site_ids import GENERIC_SITE


def new_finding(
    code: FindingCode,
    severity: Severity,
    message: str,
    **evidence: float | int | str | bool | None,
) -> Finding:
    """A finding of lowdose's own making (shared by :mod:`optimiser.study_findings`)."""
    # Trusted (optimiser.assessment.trusted): a literal code and severity, our own message and
    # evidence of plain floats, ints, strings, bools and None.
    return trusted(
        Finding, {"code": code, "severity": severity, "message": message, "evidence": evidence}
    )


def _capped(row: AcquisitionRow, severity: Severity) -> Severity:
    """Info at most on the generic site: with no protocol event (or an unknown site) N and the
    planning rules are guesses, so nothing there is a warning a physicist must review."""
    return "info" if row.context.site == GENERIC_SITE else severity


# Table positions are set and reported to about a millimetre: a planned range passing N plus the
# tolerance by half a millimetre or less (e.g. a proposal's ends rounded to 0.01 mm) is on it.
PLANNING_PRECISION_MM = 0.5


def needed_is_guess(row: AcquisitionRow) -> bool:
    """N is a guess: the irradiated range was centred on it (no z, no matching plan), or it is
    the generic site's default length (no protocol event, or an unknown site without a
    target). Findings on a guessed N are info only (severity rule 1)."""
    context = row.context
    return row.geometry.excess_is_lower_bound or (
        context.needed.basis == "site_default" and context.site == GENERIC_SITE
    )


def excess_coverage(
    row: AcquisitionRow, res: RowResult, rd: Rounded | None = None
) -> Finding | None:
    """Coverage beyond the needed range N (planning-ct.md section 4; severity rule 1).

    Severity follows the *avoidable* excess only: the planned range beyond N +- the site's
    tolerance, as a fraction of the acquisition's DLP (site thresholds). Helical over-ranging
    outside N is unavoidable with the scanner's collimation and pitch: never a finding of its own
    (it is the assessment's ``overranging_mm``), named with its number in the message of an
    avoidable excess. When N is a guess, info only and no excess claimed as a bound.
    """
    if rd is None:  # one row alone (the batch passes its rounded numbers, optimiser.rounding)
        rd = rounded_one(row, res, 1.0)
    context = row.context
    t = context.protocol.thresholds
    tol = context.protocol.coverage.tolerance_mm
    avoidable = res.avoidable_length
    over_dlp = row.exposure.ctdivol_mgy * res.overrange / 10.0
    guess = needed_is_guess(row)
    n_lo, n_hi = context.needed.z_mm
    needed = f"the {n_hi - n_lo:.0f} mm needed for {context.site} planning"
    over_text = (
        f"helical over-ranging adds {res.overrange:.0f} mm ({over_dlp:.1f} mGy.cm), unavoidable "
        "with this collimation and pitch"
        if res.overrange > PLANNING_PRECISION_MM
        else "no helical over-ranging"
    )
    evidence: dict[str, float | int | str | bool | None] = {
        "avoidable_excess_length_mm": rd.ev_avoidable_length,
        "avoidable_excess_dlp_mgy_cm": rd.ev_avoidable_dlp,
        "avoidable_fraction": rd.ev_avoidable_fraction,
        "excess_length_mm": rd.ev_excess_length,
        "excess_dlp_mgy_cm": rd.ev_excess_dlp,
        "overranging_mm": rd.ev_overrange,
        "overranging_dlp_mgy_cm": rd.ev_overrange_dlp,
        "tolerance_mm": tol,
        "needed_is_guess": guess,
        "warning_fraction": t.excess_coverage_warning_fraction,
        "alert_fraction": t.excess_coverage_alert_fraction,
    }
    if guess:
        if not (avoidable > PLANNING_PRECISION_MM or res.excess_length > t.excess_coverage_info_mm):
            return None
        why = (
            "the report gives no z positions and no planned acquisition matches, so its range "
            "was centred on the needed range"
            if row.geometry.excess_is_lower_bound
            else f"the needed range is the {context.site} site's default "
            f"{n_hi - n_lo:.0f} mm (no protocol event or target)"
        )
        return new_finding(
            "excess_coverage",
            "info",
            f"coverage not judged: {why}. {avoidable:.0f} mm of the planned range lie beyond "
            f"that range plus the {tol:g} mm tolerance and {res.excess_length:.0f} mm of the "
            "irradiated "
            f"range outside it; {over_text}. Give the protocol event or structure set to "
            "assess the coverage.",
            **evidence,
        )
    if not avoidable > PLANNING_PRECISION_MM:
        # Within tolerance: correctly planned. The helical over-ranging is the assessment's
        # ``overranging_mm``, not a finding (issue 20 defect 4: a note on every helical scan
        # taught readers that every acquisition is flagged).
        return None
    fraction = res.avoidable_fraction
    severity: Severity = "info"
    if fraction >= t.excess_coverage_alert_fraction:
        severity = "alert"
    elif fraction >= t.excess_coverage_warning_fraction:
        severity = "warning"
    derived = ""
    if res.overrange_extrapolated and not row.geometry.is_planned:
        # A report without a scanning length: its planned range is the irradiated range less
        # an over-ranging modelled beyond the fit's collimation, so the avoidable excess rests
        # on the extrapolation: info only (issue 20 defect 3; severity rule 2).
        severity = "info"
        evidence["overranging_extrapolated"] = True
        derived = (
            " The planned range is the irradiated range less over-ranging modelled beyond the "
            f"{context.protocol.overranging.fitted_max_collimation_mm:g} mm collimation the "
            "model was fitted on (extrapolated): info only; the report's scanning length would "
            "settle it."
        )
    return new_finding(
        "excess_coverage",
        severity,
        f"{avoidable:.0f} mm of the planned range lie beyond {needed} plus the {tol:g} mm "
        "tolerance: "
        f"{res.avoidable_dlp:.1f} mGy.cm ({fraction:.0%} of the DLP) and "
        f"{res.avoidable_effective_dose:.2f} mSv avoidable; separately, {over_text}.{derived}",
        **evidence,
    )


# Acquisition types with their own dose class (a stationary bolus-tracking monitor, a free
# acquisition): never compared with the helical/axial planning references (issue 9).
OWN_CLASS_TYPES = frozenset({"stationary", "free"})


_QUANTITY_TEXT = {"ctdivol_mgy": ("CTDIvol", "mGy"), "dlp_mgy_cm": ("exam DLP", "mGy.cm")}
_KIND_TEXT = {
    "drl": "DRL (75th-percentile type)",
    "typical": "typical value (median or mean, not a DRL)",
    "department_typical": "department typical value (median, ICRP 135)",
    "department_p75": "department 75th percentile (promoted to a warning level)",
}


@dataclass(frozen=True, slots=True)
class _Level:
    """One level a value is compared with and the severity the comparison gives."""

    kind: str  # drl | typical | department_typical | department_p75
    value: float
    statistic: str
    source: str
    severity: Severity


def _reference_verdict(
    protocol: SiteProtocol,
    quantity: Literal["ctdivol_mgy", "dlp_mgy_cm"],
    value: float,
    scanner_model: str | None,
) -> _Level | None:
    """The most severe level ``value`` exceeds (ICRP 135 terms, planning-ct.md section 9).

    Against a DRL: warning above ``above_reference_warning_ratio`` x it, alert at
    ``above_reference_alert_ratio`` x. Against a typical value: info above it; a warning at
    ``above_typical_warning_ratio`` x only when the site has no DRL for the quantity (the DRL is
    then the investigation level); never an alert. Against the department's own typical value
    (median from its history): info; against its 75th percentile: a warning only when the site
    promotes it (``[department] promote_p75_to_warning``). On the generic site (N unknown, no
    protocol event) every verdict is info at most.
    """
    t = protocol.thresholds
    has_drl = protocol.drl(quantity) is not None
    # The first of the most severe levels exceeded (a _Level is made only for a new best).
    best: _Level | None = None
    rank = -1
    for ref in protocol.levels(quantity):
        if ref.kind == "drl":
            if value >= ref.value * t.above_reference_alert_ratio:
                sev: Severity | None = "alert"
            elif value > ref.value * t.above_reference_warning_ratio:
                sev = "warning"
            else:
                sev = None
        elif value >= ref.value * t.above_typical_warning_ratio and not has_drl:
            sev = "warning"
        else:
            sev = "info" if value > ref.value else None
        if sev is not None and SEVERITY_RANK[sev] > rank:
            best, rank = (
                _Level(ref.kind, ref.value, ref.statistic, ref.source, sev),
                SEVERITY_RANK[sev],
            )
    dept_quantity = "ctdivol_mgy" if quantity == "ctdivol_mgy" else "exam_dlp_mgy_cm"
    for lvl in protocol.department_levels:
        if lvl.quantity != dept_quantity or lvl.scanner_model != (scanner_model or ""):
            continue
        stat = f"n = {lvl.n}, {lvl.rooms} room(s), {lvl.period}"
        src = "department history (lowdose protocols --history)"
        policy = protocol.department
        promoted = lvl.warning_value(policy.local_drl_min_rooms)
        if policy.promote_p75_to_warning and value > promoted > 0:
            if SEVERITY_RANK["warning"] > rank:
                best = _Level("department_p75", promoted, stat, src, "warning")
                rank = SEVERITY_RANK["warning"]
        elif value > lvl.median > 0 and SEVERITY_RANK["info"] > rank:
            best, rank = _Level("department_typical", lvl.median, stat, src, "info"), 0
    if best is None:
        return None
    if protocol.site == GENERIC_SITE and best.severity != "info":
        best = replace(best, severity="info")
    return best


def _reference_finding(
    row: AcquisitionRow,
    quantity: Literal["ctdivol_mgy", "dlp_mgy_cm"],
    value: float,
    level: _Level,
    scope: str,
    capped_rule: str | None = None,
    **extra: float | bool,
) -> Finding:
    name, unit = _QUANTITY_TEXT[quantity]
    ratio = value / level.value
    site, protocol = row.context.site, row.context.protocol
    t = protocol.thresholds
    drl = protocol.drl(quantity)
    if capped_rule is not None:
        rule = capped_rule
    elif level.kind == "typical" and level.severity == "info":
        rule = "info: a typical value is not an investigation level" + (
            f" (warning from {t.above_typical_warning_ratio:g} x)"
            if drl is None
            else f" (the DRL {drl.value:g} {unit} is)"
        )
    elif level.kind == "typical":
        rule = f"warning: at or above {t.above_typical_warning_ratio:g} x a typical value"
    elif level.kind == "drl" and level.severity == "alert":
        rule = f"alert: at or above {t.above_reference_alert_ratio:g} x the DRL"
    elif level.kind == "drl":
        rule = f"warning: above the DRL (alert from {t.above_reference_alert_ratio:g} x)"
    elif level.kind == "department_typical":
        rule = "info: above the department's own typical value"
    else:
        rule = "warning: above the department's 75th percentile (promoted to a warning level)"
    lead = (
        f"this acquisition brings the {name} to {value:.1f} {unit}, "
        if scope == "exam"
        else f"{name} {value:.1f} {unit} is "
    )
    return new_finding(
        "above_reference_level",
        level.severity,
        f"{lead}{ratio:.2f} x the {site} {_KIND_TEXT[level.kind]} {level.value:g} {unit} "
        f"({level.statistic}; {level.source}): {rule}.",
        quantity=quantity,
        level=scope,
        statistic=level.kind,
        value=round(value, 3),
        reference=level.value,
        ratio=round(ratio, 4),
        reference_source=level.source,
        **extra,
    )


def above_reference_level(row: AcquisitionRow, res: RowResult) -> Finding | None:
    """This acquisition's CTDIvol against the site's CTDIvol levels (DLP levels are per exam:
    :func:`exam_dlp_findings`). Stationary and free acquisitions (bolus tracking) are their
    own class and are not compared with planning references."""
    del res  # the acquisition's DLP is checked at exam level
    identity, ctdivol = row.identity, row.exposure.ctdivol_mgy
    if identity.acquisition_type in OWN_CLASS_TYPES:
        return None
    level = _reference_verdict(row.context.protocol, "ctdivol_mgy", ctdivol, identity.scanner_model)
    if level is None:
        return None
    return _reference_finding(row, "ctdivol_mgy", ctdivol, level, "acquisition")


def _exam_verdict(
    protocol: SiteProtocol, total: float, sure: float, scanner_model: str | None
) -> _Level | None:
    """The exam DLP verdict when ``total`` rests partly on an extrapolated over-ranging model
    and ``sure`` (< ``total``) is the total without that over-ranging: the severity is what
    ``sure`` earns, at least info when ``total`` exceeds a level (severity rules 2 and 5)."""
    now = _reference_verdict(protocol, "dlp_mgy_cm", total, scanner_model)
    if now is None or not sure < total:
        return now
    held = _reference_verdict(protocol, "dlp_mgy_cm", sure, scanner_model)
    severity: Severity = "info"
    if held is not None and SEVERITY_RANK[held.severity] > SEVERITY_RANK[severity]:
        severity = held.severity
    if SEVERITY_RANK[severity] < SEVERITY_RANK[now.severity]:
        return replace(now, severity=severity)
    return now


def exam_dlp_finding(
    row: AcquisitionRow,
    before: float,
    after: float,
    sure_before: float | None = None,
    sure_after: float | None = None,
) -> Finding | None:
    """The exam-level DLP check (DRLs are per exam, ICRP 135): ``before`` and ``after`` are the
    study's total DLP before and after this acquisition (the planned acquisitions of one
    protocol event, or a study's reported events across reports). A finding goes on the
    acquisition that brings the total over a level, or to a more severe one.

    ``sure_before`` / ``sure_after``: the same totals without the over-ranging of acquisitions
    whose over-ranging was modelled beyond the fit's collimation (issue 20 defect 3; defaults:
    the totals themselves). A level passed only through that extrapolation raises info; what
    the planned lengths alone pass keeps its severity."""
    protocol, model = row.context.protocol, row.identity.scanner_model
    sure_before = before if sure_before is None else sure_before
    sure_after = after if sure_after is None else sure_after
    now = _exam_verdict(protocol, after, sure_after, model)
    if now is None:
        return None
    was = _exam_verdict(protocol, before, sure_before, model)
    if was is not None and SEVERITY_RANK[was.severity] >= SEVERITY_RANK[now.severity]:
        return None
    extrapolated = sure_after < after
    capped = None
    extra: dict[str, float | bool] = {}
    if extrapolated:
        extra = {
            "exam_dlp_lower_bound_mgy_cm": round(sure_after, 3),
            "overranging_extrapolated": True,
        }
    full = _reference_verdict(protocol, "dlp_mgy_cm", after, model)
    if full is not None and SEVERITY_RANK[now.severity] < SEVERITY_RANK[full.severity]:
        over = protocol.overranging
        capped = (
            f"{now.severity}: the total includes helical over-ranging modelled beyond the "
            f"{over.fitted_max_collimation_mm:g} mm collimation the model was fitted on "
            f"(16-slice scanners; extrapolated), without it {sure_after:.1f} mGy.cm, so only "
            "what the planned lengths alone exceed can warn"
        )
    return _reference_finding(
        row,
        "dlp_mgy_cm",
        after,
        now,
        "exam",
        capped,
        exam_dlp_before_mgy_cm=round(before, 3),
        **extra,
    )


def thin_reconstruction(row: AcquisitionRow) -> Finding | None:
    minimum = row.context.protocol.acquisition.min_slice_thickness_mm
    thickness = row.exposure.slice_thickness_mm
    if thickness is None or not thickness < minimum:
        return None
    return new_finding(
        "thin_reconstruction",
        _capped(row, "warning"),
        f"slice thickness {thickness:g} mm is below the {minimum:g} mm planning "
        f"minimum for {row.context.site}: a diagnostic-grade reconstruction.",
        slice_thickness_mm=thickness,
        min_slice_thickness_mm=minimum,
    )


def kv_not_calibrated(row: AcquisitionRow) -> Finding | None:
    calibrated = row.context.protocol.acquisition.calibrated_kvp
    kvp = row.exposure.kvp
    # Exact membership first: nearly every kV is a calibrated one, and the scan of the
    # tolerance is then skipped (an exact match is within it, NaN matches neither).
    off = [
        kv for kv in kvp if kv not in calibrated and not any(abs(kv - c) < 0.5 for c in calibrated)
    ]
    if not off:
        return None
    wanted = ", ".join(f"{c:g}" for c in calibrated)
    return new_finding(
        "kv_not_calibrated",
        _capped(row, "warning"),
        f"tube voltage {', '.join(f'{kv:g}' for kv in off)} kV does not match the HU to electron "
        f"density calibration ({wanted} kV).",
        kvp=", ".join(f"{kv:g}" for kv in kvp),
        calibrated_kvp=wanted,
    )


def diagnostic_intent(row: AcquisitionRow) -> Finding | None:
    """A diagnostic study on a planning scanner (planning-ct.md sections 1 and 8). Most RDSRs
    say Has Intent = diagnostic by vendor default, RT simulators included, so that alone (or a
    diagnostic-reading name alone) is info; a warning needs corroboration: the protocol event's
    study purpose, or the RDSR intent together with a protocol/series or referral name that
    reads diagnostic (``[diagnostic_names]``). ``rows`` decides what corroborates."""
    context = row.context
    if context.diagnostic_intent is None:
        return None
    severity: Severity = "warning" if context.diagnostic_corroborated else "info"
    tail = (
        "a diagnostic scan is a separate referral to radiology, not part of a planning scan."
        if severity == "warning"
        else "uncorroborated (vendors write it by default), so info only."
    )
    return new_finding(
        "diagnostic_intent",
        _capped(row, severity),
        f"{context.diagnostic_intent}: {tail}",
        reason=context.diagnostic_intent,
        corroborated=context.diagnostic_corroborated,
    )


def unlabelled_planning_scan(row: AcquisitionRow) -> Finding | None:
    if row.context.labelled_planning:
        return None
    return new_finding(
        "unlabelled_planning_scan",
        _capped(row, "warning"),
        "the study is not labelled as a planning scan: planning images on PACS must be "
        "clearly labelled as such.",
        labelled_planning=False,
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def dose_check_exceeded(row: AcquisitionRow) -> Finding | None:
    """A Dose Check value exceeded (NEMA XR-25; planning-ct.md sections 7 and 9).

    ``row.exposure.dose_checks`` holds only the report's exceedances (a forward estimate at or
    above the configured value, a reason for proceeding, an authorising person): an exceeded
    alert value is an alert, an exceeded notification value a warning. Configuration alone never
    reaches here. For a protocol event, a predicted CTDIvol above the AAPM 2011 notification
    value of the acquisition's phantom (the site's when the event gives none) is a warning.
    """
    exposure = row.exposure
    if exposure.dose_checks:
        alerts = sum(1 for k, _ in exposure.dose_checks if k == "alert")
        notifications = len(exposure.dose_checks) - alerts
        severity: Severity = "alert" if alerts else "warning"
        text = "; ".join(t for _, t in exposure.dose_checks)
        return new_finding(
            "dose_check_exceeded",
            severity,
            f"the scanner's Dose Check recorded {_plural(alerts, 'alert')} and "
            f"{_plural(notifications, 'notification')} exceeded ({text}).",
            alerts=alerts,
            notifications=notifications,
        )
    protocol = row.context.protocol
    t = protocol.thresholds
    phantom = exposure.phantom or protocol.phantom
    limit = (
        t.notification_ctdivol_head_mgy if phantom == "head" else t.notification_ctdivol_body_mgy
    )
    if row.identity.input_kind == "protocol_event" and exposure.ctdivol_mgy > limit:
        return new_finding(
            "dose_check_exceeded",
            "warning",
            f"predicted CTDIvol {exposure.ctdivol_mgy:.1f} mGy exceeds the {limit:g} mGy "
            f"{phantom} notification value (AAPM 2011): the console will warn before the scan.",
            ctdivol_mgy=exposure.ctdivol_mgy,
            notification_ctdivol_mgy=limit,
            phantom=phantom,
        )
    return None


def acquisition_findings(
    row: AcquisitionRow, res: RowResult, rd: Rounded | None = None
) -> list[Finding]:
    """The single-acquisition findings, in a fixed order (``rd``: the row's rounded numbers)."""
    found = [
        excess_coverage(row, res, rd),
        above_reference_level(row, res),
        thin_reconstruction(row),
        kv_not_calibrated(row),
        diagnostic_intent(row),
        unlabelled_planning_scan(row),
        dose_check_exceeded(row),
    ]
    return [f for f in found if f is not None]
