"""The review desk's first schema: assessments, findings, audit, users.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "assessments",
        sa.Column("assessment_id", sa.String(64), primary_key=True),
        sa.Column("input_kind", sa.String(32), nullable=False),
        sa.Column("input_id", sa.String(256), nullable=False),
        sa.Column("study_instance_uid", sa.String(128), nullable=False),
        sa.Column("accession_number", sa.String(64), nullable=True),
        sa.Column("acquisition_index", sa.Integer, nullable=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("description", sa.String(256), nullable=True),
        sa.Column("scanner_model", sa.String(128), nullable=False),
        sa.Column("station_name", sa.String(128), nullable=True),
        sa.Column("performed_at", sa.DateTime, nullable=True),
        sa.Column("occurred_at", sa.DateTime, nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("ctdivol_mgy", sa.Float, nullable=True),
        sa.Column("dlp_mgy_cm", sa.Float, nullable=False),
        sa.Column("excess_dlp_mgy_cm", sa.Float, nullable=False),
        sa.Column("avoidable_excess_dlp_mgy_cm", sa.Float, nullable=False),
        sa.Column("effective_dose_msv", sa.Float, nullable=False),
        sa.Column("dlp_saving_mgy_cm", sa.Float, nullable=True),
        sa.Column("severity_rank", sa.Integer, nullable=False),
        sa.Column("finding_codes", sa.String(512), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("justification", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("stored_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    ix = op.create_index
    ix("ix_assessments_queue", "assessments", ["status", "occurred_at"])
    ix("ix_assessments_queue_site", "assessments", ["status", "site", "occurred_at"])
    ix("ix_assessments_queue_scanner", "assessments", ["status", "scanner_model", "occurred_at"])
    ix("ix_assessments_queue_severity", "assessments", ["status", "severity_rank", "occurred_at"])
    ix(
        "ix_assessments_queue_site_sev",
        "assessments",
        ["status", "site", "severity_rank", "occurred_at"],
    )
    ix(
        "ix_assessments_queue_scanner_sev",
        "assessments",
        ["status", "scanner_model", "severity_rank", "occurred_at"],
    )
    trend = ["month", "ctdivol_mgy", "dlp_mgy_cm", "avoidable_excess_dlp_mgy_cm", "severity_rank"]
    ix("ix_assessments_trend_site", "assessments", ["site", *trend])
    ix("ix_assessments_trend_scanner", "assessments", ["scanner_model", *trend])
    ix("ix_assessments_levels", "assessments", ["site", "scanner_model", "ctdivol_mgy"])
    ix("ix_assessments_site_time", "assessments", ["site", "occurred_at"])
    ix("ix_assessments_scanner_time", "assessments", ["scanner_model", "occurred_at"])
    ix("ix_assessments_study", "assessments", ["study_instance_uid"])
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "assessment_id",
            sa.String(64),
            sa.ForeignKey("assessments.assessment_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    ix("ix_findings_assessment", "findings", ["assessment_id"])
    ix("ix_findings_code", "findings", ["code", "assessment_id"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "assessment_id",
            sa.String(64),
            sa.ForeignKey("assessments.assessment_id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("before", sa.Text, nullable=False),
        sa.Column("after", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
    )
    ix("ix_audit_assessment", "audit", ["assessment_id", "id"])
    op.create_table(
        "users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    for table in ("users", "audit", "findings", "assessments"):
        op.drop_table(table)
