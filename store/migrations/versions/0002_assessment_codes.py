"""The queue filtered by finding code: ``assessment_codes``, one row per (code, assessment) with
copies of the queue's filter and sort columns, indexed in queue order; filled from the stored
findings and assessments. Partial indexes of the flagged rows (``status != 'none'``) for the
queue with status "all", on both tables.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "assessment_codes",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column(
            "assessment_id",
            sa.String(64),
            sa.ForeignKey("assessments.assessment_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity_rank", sa.Integer, nullable=False),
        sa.Column("occurred_at", sa.DateTime, nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("scanner_model", sa.String(128), nullable=False),
    )
    # Backfill before indexing (one sort per index instead of index maintenance per row).
    op.execute(
        "INSERT INTO assessment_codes "
        "(code, assessment_id, status, severity_rank, occurred_at, site, scanner_model) "
        "SELECT DISTINCT f.code, a.assessment_id, a.status, a.severity_rank, a.occurred_at, "
        "a.site, a.scanner_model "
        "FROM findings f JOIN assessments a ON a.assessment_id = f.assessment_id"
    )
    op.create_index(
        "ix_assessment_codes_queue",
        "assessment_codes",
        ["code", "status", "occurred_at", "assessment_id", "severity_rank", "site",
         "scanner_model"],
    )  # fmt: skip
    op.create_index("ix_assessment_codes_assessment", "assessment_codes", ["assessment_id"])
    flagged = sa.text("status != 'none'")
    op.create_index(
        "ix_assessment_codes_flagged",
        "assessment_codes",
        ["code", "occurred_at", "assessment_id", "severity_rank", "site", "scanner_model"],
        sqlite_where=flagged,
        postgresql_where=flagged,
    )
    op.create_index(
        "ix_assessments_flagged",
        "assessments",
        ["occurred_at", "assessment_id", "severity_rank"],
        sqlite_where=flagged,
        postgresql_where=flagged,
    )


def downgrade() -> None:
    op.drop_index("ix_assessments_flagged", "assessments")
    op.drop_table("assessment_codes")
