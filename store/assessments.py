"""Writing assessments (idempotent by ``assessment_id``) and reading the review queue.

An upsert inserts a new assessment or refreshes the facts of one already stored (a redelivered
Kafka message, a re-imported report) without touching its review state: an acknowledged or
justified acquisition stays so, and its ``version`` is unchanged, so a redelivery never makes a
physicist's pending action conflict. Findings are replaced in the same transaction, after the
assessment's row is locked by the upsert (PostgreSQL), so concurrent writers of one id leave one
set of findings; so are the assessment's ``assessment_codes`` rows (one per distinct finding
code, with copies of the queue's columns taken from the row just written), which the queue
filtered by finding code reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, Table, case, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from optimiser.assessment import SEVERITY_RANK, Assessment
from store.db import Store
from store.models import FLAGGED_SQL, STATUSES, AssessmentCodeRow, AssessmentRow, FindingRow

# Columns an upsert refreshes; the review state (status except none/open, assignee,
# justification, version) is the desk's and is kept.
_FACTS = (
    "input_kind", "input_id", "study_instance_uid", "accession_number", "acquisition_index",
    "site", "description", "scanner_model", "station_name", "performed_at", "occurred_at",
    "month", "ctdivol_mgy", "dlp_mgy_cm", "excess_dlp_mgy_cm", "avoidable_excess_dlp_mgy_cm",
    "effective_dose_msv", "dlp_saving_mgy_cm", "severity_rank", "finding_codes", "document",
    "updated_at",
)  # fmt: skip
# The assessment's columns copied onto its assessment_codes rows (the queue's filters and sort).
CODE_COPIES = ("status", "severity_rank", "occurred_at", "site", "scanner_model")


def utcnow() -> datetime:
    """Naive UTC, the store's time (both dialects store DateTime without a zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def assessment_values(a: Assessment, now: datetime) -> dict[str, Any]:
    """The row of one assessment (new rows: status ``open`` when it has a warning or alert)."""
    rank = max((SEVERITY_RANK[f.severity] for f in a.findings), default=-1)
    performed = naive_utc(a.performed_at)
    occurred = performed or now
    return {
        "assessment_id": a.assessment_id,
        "input_kind": a.input_kind,
        "input_id": a.input_id[:256],
        "study_instance_uid": a.study_instance_uid[:128],
        "accession_number": (a.accession_number or None) and a.accession_number[:64],
        "acquisition_index": a.acquisition_index,
        "site": a.site[:64],
        "description": (a.description or None) and a.description[:256],
        "scanner_model": (a.scanner_model or "")[:128],
        "station_name": (a.station_name or None) and a.station_name[:128],
        "performed_at": performed,
        "occurred_at": occurred,
        "month": occurred.strftime("%Y-%m"),
        "ctdivol_mgy": a.ctdivol_mgy,
        "dlp_mgy_cm": a.dlp_mgy_cm,
        "excess_dlp_mgy_cm": a.excess_dlp_mgy_cm,
        "avoidable_excess_dlp_mgy_cm": a.avoidable_excess_dlp_mgy_cm,
        "effective_dose_msv": a.effective_dose_msv,
        "dlp_saving_mgy_cm": a.proposal.dlp_saving_mgy_cm if a.proposal else None,
        "severity_rank": rank,
        "finding_codes": " ".join(dict.fromkeys(f.code for f in a.findings))[:512],
        "document": a.to_json(),
        "status": "open" if rank >= 1 else "none",
        "assignee": None,
        "justification": None,
        "version": 1,
        "stored_at": now,
        "updated_at": now,
    }


def finding_values(a: Assessment) -> list[dict[str, Any]]:
    return [
        {
            "assessment_id": a.assessment_id,
            "position": i,
            "code": f.code,
            "severity": f.severity,
            "message": f.message,
        }
        for i, f in enumerate(a.findings)
    ]


def upsert_assessments(session: Session, assessments: Iterable[Assessment]) -> int:
    """Insert or refresh ``assessments`` in the caller's transaction; returns the distinct ids.

    The last of several assessments with one id in the batch wins (PostgreSQL refuses one
    statement touching a row twice).
    """
    now = utcnow()
    latest: dict[str, Assessment] = {}
    for a in assessments:
        latest[a.assessment_id] = a
    if not latest:
        return 0
    rows = [assessment_values(a, now) for a in latest.values()]
    dialect = session.get_bind().dialect.name
    table = cast(Table, AssessmentRow.__table__)
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
    else:  # pragma: no cover - the store supports these two
        raise NotImplementedError(dialect)
    current = table.c.status
    refreshed = {name: stmt.excluded[name] for name in _FACTS}
    # Facts changed under an open item keep it open; "none" becomes "open" once flagged.
    refreshed["status"] = case((current.in_(("none", "open")), stmt.excluded.status), else_=current)
    refreshed["stored_at"] = table.c.stored_at
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        session.execute(
            stmt.values(chunk).on_conflict_do_update(
                index_elements=[table.c.assessment_id], set_=refreshed
            )
        )
    ids = list(latest)
    for start in range(0, len(ids), 500):
        chunk_ids = ids[start : start + 500]
        session.execute(delete(FindingRow).where(FindingRow.assessment_id.in_(chunk_ids)))
        session.execute(
            delete(AssessmentCodeRow).where(AssessmentCodeRow.assessment_id.in_(chunk_ids))
        )
    findings = [f for a in latest.values() for f in finding_values(a)]
    if findings:
        session.execute(insert(FindingRow), findings)
    codes = [(a.assessment_id, code) for a in latest.values()
             for code in dict.fromkeys(f.code for f in a.findings)]  # fmt: skip
    for start in range(0, len(codes), 500):
        _insert_codes(session, codes[start : start + 500])
    return len(latest)


def _insert_codes(session: Session, pairs: Sequence[tuple[str, str]]) -> None:
    """``assessment_codes`` rows for (assessment id, code) ``pairs``, the copies read from the
    assessments rows as they are now in this transaction (so an upsert that kept a review
    status copies the kept one)."""
    a, c = AssessmentRow, AssessmentCodeRow
    by_id: dict[str, list[str]] = {}
    for aid, code in pairs:
        by_id.setdefault(aid, []).append(code)
    current = session.execute(
        select(a.assessment_id, *(getattr(a, n) for n in CODE_COPIES)).where(
            a.assessment_id.in_(list(by_id))
        )
    ).all()
    rows = [
        {"code": code, "assessment_id": r[0], **dict(zip(CODE_COPIES, r[1:], strict=True))}
        for r in current
        for code in by_id[r[0]]
    ]
    if rows:
        session.execute(insert(c), rows)


def copy_status(session: Session, assessment_id: str, status: str) -> None:
    """Carry an assessment's new review status onto its ``assessment_codes`` rows (in the
    caller's transaction: the action's)."""
    session.execute(
        update(AssessmentCodeRow)
        .where(AssessmentCodeRow.assessment_id == assessment_id)
        .values(status=status)
        .execution_options(synchronize_session=False)
    )


def write_assessments(store: Store, assessments: Sequence[Assessment]) -> int:
    """Upsert in one transaction of its own; returns the distinct ids written."""
    with store.sessions.begin() as session:
        return upsert_assessments(session, assessments)


# --- the queue ----------------------------------------------------------------------------------

QUEUE_STATUSES = ("open", "acknowledged", "justified", "all")
FLAGGED_STATUSES = tuple(s for s in STATUSES if s != "none")  # "all": the same rows as FLAGGED_SQL
SEVERITIES = ("warning", "alert")


@dataclass(frozen=True)
class QueueFilter:
    """The queue's filters (each one optional); values arrive from the web as plain text and
    only ever reach the database as bound parameters."""

    status: str = "open"
    site: str | None = None
    scanner: str | None = None
    severity: str | None = None
    code: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def as_params(self) -> dict[str, str]:
        out = {"status": self.status}
        for name in ("site", "scanner", "severity", "code"):
            value = getattr(self, name)
            if value:
                out[name] = value
        if self.date_from:
            out["from"] = self.date_from.isoformat()
        if self.date_to:
            out["to"] = self.date_to.isoformat()
        return out


@dataclass
class QueuePage:
    rows: list[AssessmentRow]
    total: int
    by_severity: dict[str, int] = field(default_factory=dict)


def _filtered(
    query: Select[Any],
    f: QueueFilter,
    t: type[AssessmentRow | AssessmentCodeRow],
    *,
    counting: bool = False,
) -> Select[Any]:
    """``query`` restricted to ``f``, on the columns of ``t``: the assessments, or their
    copies on ``assessment_codes`` when ``f`` names a finding code."""
    if f.status == "all" and counting:
        # Three equality ranges of the (status, ...) covering indexes, not one whole index.
        query = query.where(t.status.in_(FLAGGED_STATUSES))
    elif f.status == "all":
        # A page newest first: spelt as the partial indexes' condition, with a literal, so
        # ix_assessments_flagged / ix_assessment_codes_flagged serve it in time order.
        query = query.where(text(f"{t.__tablename__}.{FLAGGED_SQL}"))
    else:
        query = query.where(t.status == f.status)
    if f.site:
        query = query.where(t.site == f.site)
    if f.scanner is not None and f.scanner != "":
        query = query.where(t.scanner_model == f.scanner)
    if f.severity in SEVERITY_RANK:
        query = query.where(t.severity_rank == SEVERITY_RANK[f.severity or ""])
    if f.date_from:
        query = query.where(t.occurred_at >= datetime.combine(f.date_from, datetime.min.time()))
    if f.date_to:
        end = datetime.combine(f.date_to, datetime.min.time()) + timedelta(days=1)
        query = query.where(t.occurred_at < end)
    return query


def _rows_statement(f: QueueFilter) -> Select[Any]:
    a = AssessmentRow
    if not f.code:
        return _filtered(select(a), f, a).order_by(a.occurred_at.desc(), a.assessment_id.desc())
    # By code: matches come from ix_assessment_codes_queue in queue order (code, status,
    # occurred_at, assessment_id); only the page's rows are looked up in assessments.
    c = AssessmentCodeRow
    query = select(a).join(c, c.assessment_id == a.assessment_id).where(c.code == f.code)
    return _filtered(query, f, c).order_by(c.occurred_at.desc(), c.assessment_id.desc())


def queue_statements(f: QueueFilter, *, limit: int, offset: int) -> tuple[Select[Any], Select[Any]]:
    """The queue's two statements: one page of rows matching ``f`` (newest first) and the
    counts by severity rank of everything that matches."""
    rows = _rows_statement(f).limit(limit).offset(offset)
    t: type[AssessmentRow | AssessmentCodeRow] = AssessmentCodeRow if f.code else AssessmentRow
    counts = select(t.severity_rank, func.count()).select_from(t)
    if f.code:
        counts = counts.where(AssessmentCodeRow.code == f.code)
    return rows, _filtered(counts, f, t, counting=True).group_by(t.severity_rank)


def queue(session: Session, f: QueueFilter, *, limit: int = 50, offset: int = 0) -> QueuePage:
    """Flagged acquisitions matching ``f``, newest first, with the total and counts by
    severity of everything that matches."""
    rows_stmt, counts_stmt = queue_statements(f, limit=limit, offset=offset)
    rows = list(session.scalars(rows_stmt))
    counts = session.execute(counts_stmt).all()
    names = {v: k for k, v in SEVERITY_RANK.items()}
    by_severity = {names.get(int(rank), str(rank)): int(n) for rank, n in counts}
    return QueuePage(rows, sum(by_severity.values()), by_severity)


def queue_all(session: Session, f: QueueFilter, *, limit: int = 100_000) -> list[AssessmentRow]:
    return list(session.scalars(_rows_statement(f).limit(limit)))


def get(session: Session, assessment_id: str) -> AssessmentRow | None:
    return session.get(AssessmentRow, assessment_id)


def findings_of(session: Session, assessment_id: str) -> list[FindingRow]:
    return list(
        session.scalars(
            select(FindingRow)
            .where(FindingRow.assessment_id == assessment_id)
            .order_by(FindingRow.position)
        )
    )


def document(row: AssessmentRow) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(row.document)
    return doc


def distinct_values(session: Session) -> dict[str, list[str]]:
    """Sites, scanners and finding codes present (the filters' choices)."""
    a = AssessmentRow
    return {
        "site": [s for (s,) in session.execute(select(a.site).distinct().order_by(a.site))],
        "scanner": [
            s
            for (s,) in session.execute(
                select(a.scanner_model).distinct().order_by(a.scanner_model)
            )
        ],
        "code": [
            c
            for (c,) in session.execute(
                select(AssessmentCodeRow.code).distinct().order_by(AssessmentCodeRow.code)
            )
        ],
    }


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AssessmentRow)) or 0)
