"""The physicist's actions on a flagged acquisition, each an append-only audit record.

acknowledge, justify (reason required), assign and comment. State-changing actions carry the
``version`` the physicist saw; the update applies only if it is still current
(``UPDATE ... WHERE version = :seen``), so of two physicists acting at once the second gets a
:class:`ConflictError` naming who changed it and when, never a silently lost update. A status
change is copied onto the assessment's ``assessment_codes`` rows in the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from optimiser.errors import InputError, LowdoseError
from store.assessments import copy_status, utcnow
from store.models import AssessmentRow, AuditRow

ACTIONS = ("acknowledge", "justify", "assign", "comment")
MAX_TEXT = 4000


class ConflictError(LowdoseError):
    """The acquisition changed since the physicist loaded it."""


class NotFoundError(LowdoseError):
    """No stored assessment has that id."""


@dataclass(frozen=True)
class Action:
    action: str
    username: str
    seen_version: int
    reason: str | None = None  # justify
    assignee: str | None = None  # assign
    comment: str | None = None  # comment (optional note on the others)


def _state(row: AssessmentRow) -> dict[str, object]:
    return {
        "status": row.status,
        "assignee": row.assignee,
        "justification": row.justification,
        "version": row.version,
    }


def _clean(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise InputError(f"{name}: {len(value)} characters; at most {MAX_TEXT}")
    return value or None


def apply(session: Session, assessment_id: str, act: Action) -> AuditRow:
    """Apply ``act`` in the caller's transaction; returns the audit record written."""
    if act.action not in ACTIONS:
        raise InputError(f"action {act.action!r}: not one of {', '.join(ACTIONS)}")
    reason = _clean(act.reason, "reason")
    assignee = _clean(act.assignee, "assignee")
    comment = _clean(act.comment, "comment")
    row = session.get(AssessmentRow, assessment_id, populate_existing=True)
    if row is None:
        raise NotFoundError(f"assessment {assessment_id!r}: not in the store")
    before = _state(row)
    changes: dict[str, object] = {}
    if act.action == "acknowledge":
        changes = {"status": "acknowledged"}
    elif act.action == "justify":
        if not reason:
            raise InputError(
                "justify: a reason is required (why this dose was clinically justified)"
            )
        changes = {"status": "justified", "justification": reason}
    elif act.action == "assign":
        if not assignee:
            raise InputError("assign: name the physicist to assign it to")
        changes = {"assignee": assignee}
    elif not comment:
        raise InputError("comment: the comment is empty")
    now = utcnow()
    if changes:
        result = session.execute(
            update(AssessmentRow)
            .where(
                AssessmentRow.assessment_id == assessment_id,
                AssessmentRow.version == act.seen_version,
            )
            .values(**changes, version=AssessmentRow.version + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError(_conflict_message(session, assessment_id, act.seen_version))
        if "status" in changes:  # the code-filtered queue's copy, in this same transaction
            copy_status(session, assessment_id, str(changes["status"]))
        after = {**before, **changes, "version": int(before["version"]) + 1}  # type: ignore[call-overload]
    else:
        after = before
    record = AuditRow(
        assessment_id=assessment_id,
        at=now,
        username=act.username,
        action=act.action,
        before=json.dumps(before, sort_keys=True),
        after=json.dumps(after, sort_keys=True),
        comment=reason if act.action == "justify" and not comment else comment,
    )
    session.add(record)
    session.flush()
    return record


def _conflict_message(session: Session, assessment_id: str, seen: int) -> str:
    last = session.scalars(
        select(AuditRow)
        .where(AuditRow.assessment_id == assessment_id)
        .order_by(AuditRow.id.desc())
        .limit(1)
    ).first()
    who = f" by {last.username} ({last.action}) at {last.at:%Y-%m-%d %H:%M:%S} UTC" if last else ""
    return (
        f"this acquisition was changed{who} after you opened it (you saw version {seen}); "
        "nothing was saved: reload the page, check the change and act again"
    )


def audit_of(session: Session, assessment_id: str) -> list[AuditRow]:
    return list(
        session.scalars(
            select(AuditRow).where(AuditRow.assessment_id == assessment_id).order_by(AuditRow.id)
        )
    )


def recent_audit(session: Session, limit: int = 200) -> list[AuditRow]:
    return list(session.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)))


def when(row: AuditRow) -> datetime:
    return row.at
