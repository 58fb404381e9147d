"""What a department report shows: flagged acquisitions, a summary and the points of the plots.

Flagged means needs review: a warning or an alert. Info findings are shown with their
acquisition and counted apart ("info only"), never as flagged (issue 20 defect 4); the avoidable
dose is summed over every acquisition.

Built once from the assessments and rendered twice (the console table of ``lowdose demo`` and the
HTML report) through the same cell formatting, so the two always show the same numbers.

An acquisition is assessed twice: prospectively from its protocol event and retrospectively from
the dose report. The report merges the two: findings from both (slice thickness is known only from
the protocol event, Dose Check details only from the report), numbers from the dose report (what
was delivered) when there is one. Excess DLP is the primary, robust metric; effective dose is a
population-average indicator (../shared/reference/planning-ct.md section 5).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from optimiser.assessment import SEVERITY_RANK, Assessment, Finding, Proposal
from optimiser.finding_codes import ADVICE, FINDING_CODES
from protocols.site_ids import BUILTIN_SITES

COLUMNS: tuple[str, ...] = (
    "study",
    "site",
    "acq",
    "severity",
    "finding",
    "excess length (mm)",
    "excess DLP (mGy.cm)",
    "excess E (mSv)",
    "proposed change",
    "saving DLP (mGy.cm)",
    "saving E (mSv)",
)
# Where the renderings find the cells they treat apart (indices into COLUMNS).
FINDING_COLUMN = COLUMNS.index("finding")
CHANGE_COLUMN = COLUMNS.index("proposed change")
NUMERIC_COLUMNS = frozenset(
    COLUMNS.index(c)
    for c in (
        "excess length (mm)",
        "excess DLP (mGy.cm)",
        "excess E (mSv)",
        "saving DLP (mGy.cm)",
        "saving E (mSv)",
    )
)
# Severities that reach the physicist: an acquisition needs review when it has one of them
# (issue 20 defect 4); info findings are shown, never counted as flagged.
REVIEW_SEVERITIES = frozenset({"warning", "alert"})


@dataclass(frozen=True, slots=True)
class Row:
    """One assessed (non-localizer) acquisition, its findings merged from both assessments."""

    study: str
    study_instance_uid: str
    site: str
    acquisition: str
    findings: tuple[Finding, ...]
    excess_length_mm: float
    excess_dlp_mgy_cm: float
    excess_effective_dose_msv: float
    dlp_mgy_cm: float
    ctdivol_mgy: float | None
    proposal: Proposal | None
    delivered: bool  # numbers from a dose report (True) or from the protocol event only

    @property
    def flagged(self) -> bool:
        """Needs review: a warning or an alert (info findings alone do not flag)."""
        return self.severity in REVIEW_SEVERITIES

    def flagged_for(self, code: str) -> bool:
        """A finding of ``code`` at warning or alert (info against a median is not flagged)."""
        return any(f.code == code and f.severity in REVIEW_SEVERITIES for f in self.findings)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.findings)

    @property
    def severity(self) -> str | None:
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=SEVERITY_RANK.__getitem__)

    @property
    def saving_dlp_mgy_cm(self) -> float:
        return self.proposal.dlp_saving_mgy_cm if self.proposal else 0.0

    @property
    def saving_effective_dose_msv(self) -> float:
        return self.proposal.effective_dose_saving_msv if self.proposal else 0.0

    @property
    def proposed_change(self) -> str:
        """Short form for the table: each change up to its explanation."""
        if self.proposal and self.proposal.changes:
            return "; ".join(
                c.split(": ")[0].split(" (")[0].split(", ")[0] for c in self.proposal.changes
            )
        return self.proposed_change_full

    @property
    def proposed_change_full(self) -> str:
        if self.proposal and self.proposal.changes:
            return "; ".join(self.proposal.changes)
        advice = [ADVICE[c] for c in self.codes if c in ADVICE and c != "excess_coverage"]
        return "; ".join(dict.fromkeys(advice)) or "-"


@dataclass(frozen=True, slots=True)
class Summary:
    studies: int
    acquisitions: int
    flagged: int  # acquisitions that need review: a warning or an alert
    alerts: int  # of them, with an alert
    info_only: int  # acquisitions with info findings only
    total_dlp_mgy_cm: float
    total_excess_dlp_mgy_cm: float
    avoidable_dlp_mgy_cm: float
    avoidable_effective_dose_msv: float
    findings_by_code: dict[str, int]

    @property
    def flagged_share(self) -> float:
        return self.flagged / self.acquisitions if self.acquisitions else 0.0


@dataclass(frozen=True, slots=True)
class Report:
    title: str
    rows: tuple[Row, ...]
    summary: Summary
    reference_ctdivol_mgy: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def flagged_rows(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.flagged)

    @property
    def sites(self) -> tuple[str, ...]:
        """Sites present, head to feet as in the protocol library, others after them."""
        present = set(r.site for r in self.rows)
        known = [s for s in BUILTIN_SITES if s in present]
        return (*known, *sorted(present - set(known)))


def fmt(value: float | None, decimals: int) -> str:
    """The one number format of both renderings: fixed decimals, '-' for unknown."""
    if value is None or value != value:
        return "-"
    text = f"{value:.{decimals}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def row_cells(row: Row) -> list[str]:
    """The table cells of one flagged acquisition, in :data:`COLUMNS` order."""
    return [
        row.study,
        row.site,
        row.acquisition,
        row.severity or "-",
        ", ".join(row.codes),
        fmt(row.excess_length_mm, 0),
        fmt(row.excess_dlp_mgy_cm, 1),
        fmt(row.excess_effective_dose_msv, 2),
        row.proposed_change,
        fmt(row.saving_dlp_mgy_cm, 1),
        fmt(row.saving_effective_dose_msv, 2),
    ]


def summary_cells(summary: Summary) -> list[tuple[str, str]]:
    """The summary lines, label and value, shared by both renderings."""
    return [
        ("studies", str(summary.studies)),
        ("acquisitions assessed", str(summary.acquisitions)),
        (
            "need review (warning or alert)",
            f"{summary.flagged} ({summary.alerts} alert, {summary.flagged - summary.alerts} "
            "warning)",
        ),
        ("share needing review", f"{100.0 * summary.flagged_share:.0f}%"),
        ("info findings only", str(summary.info_only)),
        ("total DLP (mGy.cm)", fmt(summary.total_dlp_mgy_cm, 1)),
        ("excess DLP outside the needed range (mGy.cm)", fmt(summary.total_excess_dlp_mgy_cm, 1)),
        ("total avoidable DLP (mGy.cm)", fmt(summary.avoidable_dlp_mgy_cm, 1)),
        ("avoidable effective dose (mSv)", fmt(summary.avoidable_effective_dose_msv, 2)),
    ]


SITE_COLUMNS: tuple[str, ...] = (
    "site",
    "acquisitions",
    "need review",
    "median CTDIvol (mGy)",
    "reference CTDIvol (mGy)",
    "total DLP (mGy.cm)",
    "excess DLP (mGy.cm)",
    "avoidable DLP (mGy.cm)",
)


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def site_cells(report: Report) -> list[list[str]]:
    """One line per site: how its acquisitions compare with its reference level."""
    out = []
    for site in report.sites:
        rows = [r for r in report.rows if r.site == site]
        ctdi = [r.ctdivol_mgy for r in rows if r.ctdivol_mgy is not None]
        out.append(
            [
                site,
                str(len(rows)),
                str(sum(r.flagged for r in rows)),
                fmt(_median(ctdi), 1),
                fmt(report.reference_ctdivol_mgy.get(site), 1),
                fmt(sum(r.dlp_mgy_cm for r in rows), 1),
                fmt(sum(r.excess_dlp_mgy_cm for r in rows), 1),
                fmt(sum(r.saving_dlp_mgy_cm for r in rows), 1),
            ]
        )
    return out


def _merge_findings(first: Iterable[Finding], second: Iterable[Finding]) -> tuple[Finding, ...]:
    out: dict[str, Finding] = {}
    for f in (*first, *second):
        out.setdefault(f.code, f)
    return tuple(sorted(out.values(), key=lambda f: FINDING_CODES.index(f.code)))


def _label(a: Assessment) -> str:
    index = "" if a.acquisition_index is None else f"#{a.acquisition_index}"
    return f"{index} {a.description or ''}".strip() or (a.irradiation_event_uid or "-")[-8:]


def build_report(
    assessments: Iterable[Assessment],
    *,
    title: str,
    event_index: Mapping[str, int] | None = None,
    reference_ctdivol_mgy: Mapping[str, float] | None = None,
    notes: Iterable[str] = (),
) -> Report:
    """Merge the assessments of each acquisition into one row and total them up.

    ``event_index`` maps an Irradiation Event UID to the index of the planned acquisition it
    delivered, so a dose-report assessment joins the protocol-event assessment of the same
    acquisition; without it each dose-report acquisition is its own row.
    """
    index = dict(event_index or {})
    planned: dict[tuple[str, str], Assessment] = {}
    reported: dict[tuple[str, str], Assessment] = {}
    order: list[tuple[str, str]] = []
    for a in assessments:
        if a.input_kind == "dose_report":
            uid = a.irradiation_event_uid or a.assessment_id
            key = (a.study_instance_uid, str(index[uid]) if uid in index else uid)
            target = reported
        else:
            key = (a.study_instance_uid, str(a.acquisition_index))
            target = planned
        if key not in planned and key not in reported:
            order.append(key)
        target[key] = a
    rows = []
    for key in order:
        plan, report = planned.get(key), reported.get(key)
        main = report or plan
        assert main is not None
        findings = _merge_findings(report.findings if report else (), plan.findings if plan else ())
        proposal = main.proposal if main.proposal is not None else (plan.proposal if plan else None)
        rows.append(
            Row(
                study=main.accession_number or main.study_instance_uid[-8:],
                study_instance_uid=main.study_instance_uid,
                site=main.site,
                acquisition=_label(plan or main),
                findings=findings,
                excess_length_mm=main.excess_length_mm,
                excess_dlp_mgy_cm=main.excess_dlp_mgy_cm,
                excess_effective_dose_msv=main.excess_effective_dose_msv,
                dlp_mgy_cm=main.dlp_mgy_cm,
                ctdivol_mgy=main.ctdivol_mgy,
                proposal=proposal,
                delivered=report is not None,
            )
        )
    flagged = [r for r in rows if r.flagged]
    by_code = {c: sum(c in r.codes for r in rows) for c in FINDING_CODES}
    # Avoidable dose is summed over every acquisition: an avoidable excess at info (small, or
    # below its warning share) is still avoidable.
    summary = Summary(
        studies=len({r.study_instance_uid for r in rows}),
        acquisitions=len(rows),
        flagged=len(flagged),
        alerts=sum(r.severity == "alert" for r in rows),
        info_only=sum(r.severity == "info" for r in rows),
        total_dlp_mgy_cm=sum(r.dlp_mgy_cm for r in rows),
        total_excess_dlp_mgy_cm=sum(r.excess_dlp_mgy_cm for r in rows),
        avoidable_dlp_mgy_cm=sum(r.saving_dlp_mgy_cm for r in rows),
        avoidable_effective_dose_msv=sum(r.saving_effective_dose_msv for r in rows),
        findings_by_code=by_code,
    )
    return Report(
        title=title,
        rows=tuple(rows),
        summary=summary,
        reference_ctdivol_mgy=dict(reference_ctdivol_mgy or {}),
        notes=tuple(notes),
    )
