"""Study accumulation: merge the dose reports of one study into its unique irradiation events.

Scanners resend a growing report after each exposure (each a superset of the last) and reopen an
exam with a continuation report (same study, disjoint events): so events are deduplicated by
Irradiation Event UID and reported totals are never added blindly
(../shared/reference/planning-ct.md section 2). The study DLP is recomputed from the unique events
and compared with the reported totals of the reports no other report contains; a mismatch is a
warning, never an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC

from optimiser.records import CtAcquisition, DoseReport, StudyDose

# Totals are written with 2 decimals while events are rounded one by one.
ABS_TOLERANCE_PER_EVENT_MGY_CM = 0.01
REL_TOLERANCE = 1e-3


def _newness(indexed: tuple[int, DoseReport]) -> tuple[float, int, int]:
    index, report = indexed
    end = report.end_of_irradiation
    stamp = -1.0
    if end is not None:
        stamp = (end if end.tzinfo else end.replace(tzinfo=UTC)).timestamp()
    return stamp, len(report.acquisitions), index


def merge_study(reports: Iterable[DoseReport]) -> list[StudyDose]:
    """Group reports by Study Instance UID; one :class:`StudyDose` per study, in first-seen order.

    Of an event present in several reports, the copy in the newest report is kept (newest: latest
    End of X-Ray Irradiation, then most events, then input order).
    """
    groups: dict[str, list[tuple[int, DoseReport]]] = {}
    for index, report in enumerate(reports):
        groups.setdefault(report.study_instance_uid, []).append((index, report))
    return [_merge_one(uid, members) for uid, members in groups.items()]


def _merge_one(uid: str, members: list[tuple[int, DoseReport]]) -> StudyDose:
    ordered = sorted(members, key=_newness)
    events: dict[str, CtAcquisition] = {}
    order: list[str] = []
    for _, report in ordered:
        for acq in report.acquisitions:
            if acq.irradiation_event_uid not in events:
                order.append(acq.irradiation_event_uid)
            events[acq.irradiation_event_uid] = acq
    # Document order of first appearance, oldest report first, is the order of exposure.
    acquisitions = [events[u] for u in order]
    total = sum(a.dlp_mgy_cm for a in acquisitions if a.dlp_mgy_cm is not None)
    warnings = [w for _, r in members for w in r.warnings]
    reported = [r.dlp_total_mgy_cm for _, r in members if r.dlp_total_mgy_cm is not None]
    expected = _expected_total([r for _, r in ordered])
    if expected is not None:
        tolerance = max(ABS_TOLERANCE_PER_EVENT_MGY_CM * len(acquisitions), REL_TOLERANCE * total)
        if abs(expected - total) > tolerance:
            warnings.append(
                f"study {uid}: DLP recomputed from {len(acquisitions)} unique events is "
                f"{total:.2f} mGy.cm but the reported totals give {expected:.2f} mGy.cm "
                f"(reports {', '.join(r.source for _, r in members)}); events may be missing "
                "from the reports or the totals may include events not reported"
            )
    return StudyDose(
        study_instance_uid=uid,
        sources=[r.source for _, r in members],
        acquisitions=acquisitions,
        reported_dlp_totals_mgy_cm=reported,
        dlp_total_mgy_cm=total,
        header=ordered[-1][1],
        warnings=warnings,
    )


def _expected_total(reports: list[DoseReport]) -> float | None:
    """Sum of the reported totals of the reports whose events no other report contains."""
    sets = [frozenset(a.irradiation_event_uid for a in r.acquisitions) for r in reports]
    total = 0.0
    seen: set[frozenset[str]] = set()
    for i, (report, events) in enumerate(zip(reports, sets, strict=True)):
        contained = any(
            j != i and events <= other and (events != other or j > i)
            for j, other in enumerate(sets)
        )
        if contained or events in seen:
            continue
        seen.add(events)
        if report.dlp_total_mgy_cm is None:
            return None
        total += report.dlp_total_mgy_cm
    return total
