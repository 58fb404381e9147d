"""The store's tables (SQLAlchemy 2 declarative models). The migration in
``store/migrations/versions`` creates exactly these (tests/store/test_schema.py compares them).

Queue and trend queries read only indexed columns: ``status`` + ``occurred_at`` (the open
queue, newest first, and its filters by site, scanner and severity), ``assessment_codes`` (the
queue filtered by finding code) and ``site``/``scanner_model`` + ``month`` covering the trend
aggregates.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Review states. "none": nothing to review (no warning or alert); "open": in the queue.
STATUSES = ("none", "open", "acknowledged", "justified")
# The queue with status "all" (everything ever flagged): partial indexes hold only these rows.
# Queries must spell the condition with a literal, as here (a bound parameter cannot prove that
# a row is in a partial index); store.assessments._filtered spells it with this text.
FLAGGED_SQL = "status != 'none'"
ROLES = ("physicist", "viewer")


class Base(DeclarativeBase):
    pass


class AssessmentRow(Base):
    __tablename__ = "assessments"

    assessment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    input_kind: Mapped[str] = mapped_column(String(32))
    input_id: Mapped[str] = mapped_column(String(256))
    study_instance_uid: Mapped[str] = mapped_column(String(128))
    accession_number: Mapped[str | None] = mapped_column(String(64))
    acquisition_index: Mapped[int | None] = mapped_column(Integer)
    site: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(256))
    scanner_model: Mapped[str] = mapped_column(String(128))  # "" when unknown (indexable)
    station_name: Mapped[str | None] = mapped_column(String(128))
    performed_at: Mapped[datetime | None] = mapped_column(DateTime)  # naive UTC
    # performed_at, else when the store first saw it: the queue's and the trends' time axis.
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM of occurred_at
    ctdivol_mgy: Mapped[float | None] = mapped_column(Float)
    dlp_mgy_cm: Mapped[float] = mapped_column(Float)
    excess_dlp_mgy_cm: Mapped[float] = mapped_column(Float)
    avoidable_excess_dlp_mgy_cm: Mapped[float] = mapped_column(Float)
    effective_dose_msv: Mapped[float] = mapped_column(Float)
    dlp_saving_mgy_cm: Mapped[float | None] = mapped_column(Float)
    # -1 no finding, 0 info, 1 warning, 2 alert (optimiser.assessment.SEVERITY_RANK)
    severity_rank: Mapped[int] = mapped_column(Integer)
    finding_codes: Mapped[str] = mapped_column(String(512))  # space-separated, for display
    document: Mapped[str] = mapped_column(Text)  # the whole assessment JSON: nothing is lost
    # Review state: changed only through store.review (with an audit record each time).
    status: Mapped[str] = mapped_column(String(16))
    assignee: Mapped[str | None] = mapped_column(String(64))
    justification: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    stored_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_assessments_queue", "status", "occurred_at"),
        Index("ix_assessments_queue_site", "status", "site", "occurred_at"),
        Index("ix_assessments_queue_scanner", "status", "scanner_model", "occurred_at"),
        Index("ix_assessments_queue_severity", "status", "severity_rank", "occurred_at"),
        Index("ix_assessments_queue_site_sev", "status", "site", "severity_rank", "occurred_at"),
        Index(
            "ix_assessments_queue_scanner_sev",
            "status",
            "scanner_model",
            "severity_rank",
            "occurred_at",
        ),
        Index(
            "ix_assessments_trend_site",
            "site",
            "month",
            "ctdivol_mgy",
            "dlp_mgy_cm",
            "avoidable_excess_dlp_mgy_cm",
            "severity_rank",
        ),
        Index(
            "ix_assessments_trend_scanner",
            "scanner_model",
            "month",
            "ctdivol_mgy",
            "dlp_mgy_cm",
            "avoidable_excess_dlp_mgy_cm",
            "severity_rank",
        ),
        Index("ix_assessments_levels", "site", "scanner_model", "ctdivol_mgy"),
        Index("ix_assessments_site_time", "site", "occurred_at"),
        Index("ix_assessments_scanner_time", "scanner_model", "occurred_at"),
        Index("ix_assessments_study", "study_instance_uid"),
        Index(
            "ix_assessments_flagged",
            "occurred_at",
            "assessment_id",
            "severity_rank",
            sqlite_where=text(FLAGGED_SQL),
            postgresql_where=text(FLAGGED_SQL),
        ),
    )


class FindingRow(Base):
    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    assessment_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("assessments.assessment_id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_findings_assessment", "assessment_id"),
        Index("ix_findings_code", "code", "assessment_id"),
    )


class AssessmentCodeRow(Base):
    """One row per (finding code, assessment): the queue filtered by finding code.

    The queue's filter and sort columns are copied from the assessment (``status``,
    ``severity_rank``, ``occurred_at``, ``site``, ``scanner_model``), so the filtered queue and
    its counts read ``ix_assessment_codes_queue`` in queue order and look up only the rows of the
    page, instead of probing ``assessments`` once per matching finding. A findings row cannot
    carry the copies: one assessment may have several findings of one code (one per unlabelled
    series). Written only by :func:`store.assessments.upsert_assessments` (with the findings)
    and kept current by :func:`store.review.apply`, each in the transaction of its change.
    """

    __tablename__ = "assessment_codes"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    assessment_id: Mapped[str] = mapped_column(
        String(64),
        ForeignKey("assessments.assessment_id", ondelete="CASCADE"),
        primary_key=True,
    )
    status: Mapped[str] = mapped_column(String(16))
    severity_rank: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    site: Mapped[str] = mapped_column(String(64))
    scanner_model: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        # Covering for the page (equality on code and status, newest first, the rest checked
        # in the index) and for the counts by severity.
        Index(
            "ix_assessment_codes_queue",
            "code",
            "status",
            "occurred_at",
            "assessment_id",
            "severity_rank",
            "site",
            "scanner_model",
        ),
        Index(
            "ix_assessment_codes_flagged",
            "code",
            "occurred_at",
            "assessment_id",
            "severity_rank",
            "site",
            "scanner_model",
            sqlite_where=text(FLAGGED_SQL),
            postgresql_where=text(FLAGGED_SQL),
        ),
        Index("ix_assessment_codes_assessment", "assessment_id"),
    )


class AuditRow(Base):
    """Append-only: the store never updates or deletes an audit record."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    assessment_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("assessments.assessment_id", ondelete="RESTRICT")
    )
    at: Mapped[datetime] = mapped_column(DateTime)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    before: Mapped[str] = mapped_column(Text)  # JSON of the review fields before
    after: Mapped[str] = mapped_column(Text)  # ... and after
    comment: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_audit_assessment", "assessment_id", "id"),)


class UserRow(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(256))  # Argon2id (argon2-cffi)
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)
