"""Findings across the acquisitions of one study: repeats and extra contrast phases.

The planning-grade signs of ../shared/reference/planning-ct.md section 8: one helical
acquisition and one phase over the range planning needs; several contrast phases, a non-contrast
plus contrast pair, or a repeat without a recorded reason are diagnostic-grade (a repeat with a
recorded reason is info: :mod:`optimiser.repeats`). Thresholds come from the site library
(``[acquisition]`` and ``[thresholds]``); the pipeline (:mod:`optimiser.pipeline`) gives each
row the earlier acquisitions it is compared with.
"""

from __future__ import annotations

from optimiser.assessment import Finding
from optimiser.dose_model import AcquisitionRow
from optimiser.events import (
    MAX_TEXT,
    ContrastPhase,
    ZRange,
    is_enhanced,
    phase_name,
    repeat_reason_name,
)
from optimiser.findings import OWN_CLASS_TYPES, new_finding
from optimiser.kernels import RowResult
from optimiser.repeats import RecordedReason
from protocols.library import AcquisitionRules


def in_study_checks(row: AcquisitionRow) -> bool:
    """Whether ``row`` takes part in the study-level checks (repeats and contrast phases): it is
    placed well enough to be compared, and it is not of its own dose class. A stationary or free
    acquisition (bolus-tracking monitoring, a test bolus) is neither a contrast phase nor a
    repeat of the planning scan: the planning-grade signs are several phases or several helical
    acquisitions over one range (planning-ct.md section 8; issue 20 defect 1)."""
    return (
        row.geometry.comparable_placement and row.identity.acquisition_type not in OWN_CLASS_TYPES
    )


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
    without Procedure Context) is compared with unknown phases only. Stationary and free
    acquisitions take no part (:func:`in_study_checks`).
    """
    out: dict[int, list[Finding]] = {}
    for i, row in enumerate(rows):
        if not in_study_checks(row):
            continue
        site, protocol, contrast = row.context.site, row.context.protocol, row.exposure.contrast
        t = protocol.thresholds
        rules = protocol.acquisition
        xi = (results[i].x_lo, results[i].x_hi)
        overlapping = [
            (lo, hi, c)
            for lo, hi, c in previous[i]
            if _overlap_fraction(xi, (lo, hi)) >= t.repeat_overlap_fraction
        ]
        over = [c for _, _, c in overlapping]
        keeps = _covered(xi, row.context.needed.z_mm, [(lo, hi) for lo, hi, _ in overlapping])
        omission = (
            " Omitting it keeps the needed range covered by the earlier acquisition(s)."
            if keeps
            else " The earlier acquisition(s) do not cover all of its part of the needed range: "
            "not proposed for omission."
        )
        group = [*over, contrast]
        enhanced = [c for c in group if is_enhanced(c)]
        plain = "none" in group
        n_phases = len(enhanced) + (1 if plain else 0)
        found: list[Finding] = []
        # Only an acquisition that is itself a new phase is the surplus one: an enhanced one, or
        # the first non-contrast one over the range.
        adds_phase = is_enhanced(contrast) or (contrast == "none" and "none" not in over)
        if adds_phase and n_phases > rules.allowed_contrast_phases:
            named = ([phase_name("none")] if plain else []) + [phase_name(c) for c in enhanced]
            found.append(
                new_finding(
                    "multiphase_contrast",
                    "warning",
                    f"{n_phases} contrast phases over one range ({', '.join(named)}), more than "
                    f"the {rules.allowed_contrast_phases} allowed for {site} planning: this "
                    f"{phase_name(contrast)} acquisition is an extra phase.{omission}",
                    contrast_phases=n_phases,
                    phases=", ".join(named),
                    allowed_contrast_phases=rules.allowed_contrast_phases,
                    omission_keeps_needed_range=keeps,
                )
            )
        same = 0 if is_enhanced(contrast) else sum(1 for c in over if c == contrast)
        if same + 1 > rules.allowed_acquisitions_per_range:
            lead = (
                f"this {phase_name(contrast)} acquisition repeats {same} earlier "
                f"{phase_name(contrast)} acquisition(s) over the same range (allowed "
                f"per range for {site}: {rules.allowed_acquisitions_per_range})"
            )
            reason = row.context.repeat_reason
            if reason is None:
                found.append(
                    new_finding(
                        "repeat_acquisition",
                        "warning",
                        f"{lead}.{omission}",
                        earlier_over_same_range=same,
                        allowed_acquisitions_per_range=rules.allowed_acquisitions_per_range,
                        omission_keeps_needed_range=keeps,
                    )
                )
            else:
                found.append(_justified_repeat(lead, reason, results[i].dlp, same, rules, keeps))
        if found:
            out[i] = found
    return out


# Where a recorded repeat reason was read, as a message says it.
_REASON_SOURCE_TEXT = {
    "protocol_event": "the protocol event",
    "dose_report_comment": "the dose report's Comment",
    "acquisition_protocol": "the protocol name",
}
_QUOTE_MAX = 80  # characters of the recorded words quoted in a message


def _justified_repeat(
    lead: str,
    reason: RecordedReason,
    dlp_mgy_cm: float,
    same: int,
    rules: AcquisitionRules,
    keeps: bool,
) -> Finding:
    """A repeat whose later acquisition records why (planning-ct.md section 8: a repeat is a
    diagnostic-grade sign "without a recorded reason"): info, naming the reason. Its dose stays
    in the exam and is not claimed as avoidable, nor is it proposed for omission
    (:func:`optimiser.assemble.is_surplus`): the reason says the earlier acquisition could not
    serve for planning, so the repeat was needed once that had happened."""
    words = (reason.text or "").strip()
    quoted = words if len(words) <= _QUOTE_MAX else words[: _QUOTE_MAX - 3].rstrip() + "..."
    said = f' ("{quoted}")' if quoted else ""
    return new_finding(
        "repeat_acquisition",
        "info",
        f"{lead}, with a recorded reason: {repeat_reason_name(reason.reason)}{said}, in "
        f"{_REASON_SOURCE_TEXT[reason.source]}. A repeat with a recorded reason is not a "
        f"planning-grade problem: info; its {dlp_mgy_cm:.1f} mGy.cm counts in the exam DLP "
        "and is not claimed as avoidable.",
        earlier_over_same_range=same,
        allowed_acquisitions_per_range=rules.allowed_acquisitions_per_range,
        omission_keeps_needed_range=keeps,
        repeat_reason=reason.reason,
        repeat_reason_text=words[:MAX_TEXT] or None,
        repeat_reason_source=reason.source,
        repeat_dlp_mgy_cm=round(dlp_mgy_cm, 2),
    )
