"""The queue filtered by finding code reads one index, and its copies stay consistent.

``assessment_codes`` holds one row per (finding code, assessment) with copies of the queue's
filter and sort columns (status, severity, time, site, scanner); the code-filtered queue and its
counts read its index ``ix_assessment_codes_queue`` instead of probing ``assessments`` once per
matching finding. These tests check the copies after every write path and every action (both
dialects), and the query plans (SQLite's EXPLAIN QUERY PLAN; PostgreSQL's EXPLAIN).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Select, select, text
from sqlalchemy.orm import Session

from store import Store
from store.assessments import QueueFilter, queue, queue_statements, write_assessments
from store.models import AssessmentCodeRow, AssessmentRow, FindingRow
from store.review import Action, ConflictError, apply
from tests.store.factory import make_assessment

Copy = tuple[str, str, str, int, object, str, str]


def _copies(s: Session) -> set[Copy]:
    c = AssessmentCodeRow
    return {
        (r.code, r.assessment_id, r.status, r.severity_rank, r.occurred_at, r.site,
         r.scanner_model)
        for r in s.scalars(select(c))
    }  # fmt: skip


def _expected(s: Session) -> set[Copy]:
    """What the copies must be: each distinct code of each assessment's findings, with the
    assessment's current review and filter columns."""
    a, f = AssessmentRow, FindingRow
    rows = s.execute(
        select(f.code, a.assessment_id, a.status, a.severity_rank, a.occurred_at, a.site,
               a.scanner_model).join(a, a.assessment_id == f.assessment_id)
    ).all()  # fmt: skip
    return {tuple(r) for r in rows}  # type: ignore[misc]


def _assert_consistent(store: Store, n_expected: int) -> None:
    with store.sessions() as s:
        copies, expected = _copies(s), _expected(s)
    assert copies == expected
    assert len(copies) == n_expected


def test_copies_follow_every_write_and_every_action(store: Store) -> None:
    one = make_assessment(1, findings=[("excess_coverage", "warning")])
    # Two findings of one code (one per unlabelled series): one copy row.
    two = make_assessment(
        2,
        site="brain",
        findings=[
            ("unlabelled_planning_scan", "warning"),
            ("unlabelled_planning_scan", "warning"),
            ("repeat_acquisition", "alert"),
        ],
    )
    three = make_assessment(3, findings=[("thin_reconstruction", "info")])  # status none
    write_assessments(store, [one, two, three])
    _assert_consistent(store, 4)
    aid1, aid2 = one.assessment_id, two.assessment_id

    with store.sessions.begin() as s:
        apply(s, aid1, Action("acknowledge", "ann", 1))
    _assert_consistent(store, 4)
    with store.sessions.begin() as s:
        apply(s, aid2, Action("assign", "ann", 1, assignee="bob"))
        apply(s, aid2, Action("comment", "bob", 2, comment="looking"))
        apply(s, aid2, Action("justify", "bob", 2, reason="patient moved: repeat needed"))
    _assert_consistent(store, 4)
    with store.sessions() as s:
        statuses = {(r.assessment_id, r.status) for r in s.scalars(select(AssessmentCodeRow))}
    assert statuses == {(aid1, "acknowledged"), (aid2, "justified"),
                        (three.assessment_id, "none")}  # fmt: skip

    # A stale action changes nothing, the copies included (same transaction).
    with store.sessions.begin() as s, pytest.raises(ConflictError):
        apply(s, aid1, Action("justify", "bob", 1, reason="too late"))
    _assert_consistent(store, 4)

    # Redelivery with changed facts: new codes, site, time, severity; review state kept.
    moved = make_assessment(
        1, site="lung_3d", scanner="Aquilion LB",
        findings=[("above_reference_level", "alert"), ("repeat_acquisition", "warning")],
    )  # fmt: skip
    flagged = make_assessment(3, findings=[("excess_coverage", "alert")])  # none -> open
    write_assessments(store, [moved, flagged])
    _assert_consistent(store, 5)
    with store.sessions() as s:
        by_id = {(r.assessment_id, r.code): r for r in s.scalars(select(AssessmentCodeRow))}
    copy = by_id[(aid1, "above_reference_level")]
    assert (copy.status, copy.site, copy.scanner_model, copy.severity_rank) == (
        "acknowledged", "lung_3d", "Aquilion LB", 2,
    )  # fmt: skip
    assert by_id[(three.assessment_id, "excess_coverage")].status == "open"

    # A finding gone on redelivery takes its copy with it.
    write_assessments(store, [make_assessment(1)])
    _assert_consistent(store, 3)


def test_code_filter_gives_the_same_answer_as_the_findings(store: Store) -> None:
    write_assessments(
        store,
        [
            make_assessment(i, site=("prostate", "brain")[i % 2],
                            scanner=("Aquilion LB", None)[i % 3 == 0],
                            findings=[("repeat_acquisition", ("warning", "alert")[i % 2])]
                            + [("unlabelled_planning_scan", "warning")] * (i % 3))
            for i in range(1, 13)
        ] + [make_assessment(20, findings=[("excess_coverage", "alert")])],
    )  # fmt: skip
    with store.sessions.begin() as s:
        apply(s, make_assessment(4).assessment_id, Action("acknowledge", "ann", 1))
    with store.sessions() as s:
        page = queue(s, QueueFilter(code="repeat_acquisition"), limit=5)
        assert page.total == 11 and page.by_severity == {"warning": 5, "alert": 6}
        assert [r.assessment_id[-2:] for r in page.rows] == ["12", "11", "10", "09", "08"]
        later = queue(s, QueueFilter(code="repeat_acquisition"), limit=5, offset=10)
        assert [r.assessment_id[-2:] for r in later.rows] == ["01"]
        unlabelled = queue(s, QueueFilter(code="unlabelled_planning_scan"))
        assert unlabelled.total == 7  # i % 3 != 0, less #4 (acknowledged): one row each
        assert len({r.assessment_id for r in unlabelled.rows}) == 7
        f = QueueFilter(code="repeat_acquisition", site="brain", severity="warning")
        assert queue(s, f).total == 0
        f = QueueFilter(code="repeat_acquisition", site="brain", scanner="Aquilion LB")
        assert [r.assessment_id[-2:] for r in queue(s, f).rows] == ["11", "07", "05", "01"]
        f = QueueFilter(code="repeat_acquisition", status="acknowledged")
        assert [r.assessment_id[-2:] for r in queue(s, f).rows] == ["04"]
        assert queue(s, QueueFilter(code="repeat_acquisition", status="all")).total == 12
        assert queue(s, QueueFilter(code="x' OR '1'='1")).total == 0


def _sqlite_plan(s: Session, stmt: Select[Any]) -> str:
    compiled = stmt.compile(s.get_bind(), compile_kwargs={"literal_binds": True})
    rows = s.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
    return "\n".join(str(r[-1]) for r in rows)


CODE = "repeat_acquisition"


def test_sqlite_plans_of_the_queue_read_indexes(tmp_path: Any) -> None:
    from store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        write_assessments(
            store,
            [make_assessment(i, findings=[(CODE, "alert")] if i % 3 else None) for i in range(60)],
        )
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        with store.sessions() as s:
            for f in (QueueFilter(code=CODE), QueueFilter(code=CODE, status="all"),
                      QueueFilter(code=CODE, site="prostate", severity="alert")):  # fmt: skip
                rows, counts = queue_statements(f, limit=50, offset=0)
                plan = _sqlite_plan(s, rows)
                # Matches come from a code index in queue order: the page stops after 50 rows,
                # with no sort of every match and no full scan of any table.
                assert "USING COVERING INDEX ix_assessment_codes_queue" in plan or (
                    "USING INDEX ix_assessment_codes_flagged" in plan
                ), plan
                assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
                assert "SCAN" not in plan, plan
                # The counts never touch the assessments (no lookup per match).
                plan = _sqlite_plan(s, counts)
                assert "USING COVERING INDEX ix_assessment_codes_queue" in plan, plan
                assert "assessments" not in plan and "SCAN" not in plan, plan
            # Status "all" (status != 'none', which a (status, ...) index cannot serve): the
            # page walks the partial index of flagged rows; the counts seek three statuses.
            for f in (QueueFilter(status="all"), QueueFilter(status="all", severity="alert")):
                rows, counts = queue_statements(f, limit=50, offset=0)
                plan = _sqlite_plan(s, rows)
                assert "ix_assessments_flagged" in plan, plan
                assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
                plan = _sqlite_plan(s, counts)
                assert "SEARCH assessments USING COVERING INDEX" in plan, plan
                assert "SCAN" not in plan, plan
            # Every filter's counts: an index search, never a scan.
            every = [
                QueueFilter(),
                QueueFilter(site="prostate"),
                QueueFilter(scanner="x"),
                QueueFilter(severity="warning"),
                QueueFilter(status="justified"),
                QueueFilter(status="all", site="prostate"),
                QueueFilter(status="all", scanner="x", severity="alert"),
                QueueFilter(date_from=date(2026, 3, 1), date_to=date(2026, 3, 2)),
            ]
            for f in every:
                plan = _sqlite_plan(s, queue_statements(f, limit=50, offset=0)[1])
                assert "SEARCH assessments USING" in plan and "SCAN" not in plan, (f, plan)
    finally:
        store.close()


# 50,000 assessments, 15% flagged with one of four codes (spread over two years), made by the
# server itself; the copies written as the upsert writes them (from the assessment's columns).
_PG_FILL = """
INSERT INTO assessments (assessment_id, input_kind, input_id, study_instance_uid, site,
  scanner_model, occurred_at, month, dlp_mgy_cm, excess_dlp_mgy_cm, avoidable_excess_dlp_mgy_cm,
  effective_dose_msv, severity_rank, finding_codes, document, status, version, stored_at,
  updated_at)
SELECT 'asm-p' || i, 'dose_report', 'i' || i, 's' || i,
  (ARRAY['prostate','brain','lung_3d'])[mod(i, 3) + 1],
  'Aquilion LB', t, to_char(t, 'YYYY-MM'), 500, 50, 20, 8,
  CASE WHEN mod(i, 20) = 0 THEN 2 WHEN mod(i, 7) = 0 THEN 1 ELSE -1 END,
  CASE WHEN mod(i, 20) = 0 OR mod(i, 7) = 0
       THEN (ARRAY['excess_coverage','repeat_acquisition','above_reference_level',
                   'multiphase_contrast'])[mod(i, 4) + 1] ELSE '' END,
  '{}', CASE WHEN mod(i, 20) = 0 OR mod(i, 7) = 0 THEN 'open' ELSE 'none' END, 1, t, t
FROM generate_series(1, 50000) AS i,
  LATERAL (SELECT timestamp '2024-01-01' + i * interval '20 minutes' AS t) AS x;
INSERT INTO findings (assessment_id, position, code, severity, message)
SELECT assessment_id, 0, finding_codes, 'warning', 'bench' FROM assessments
WHERE finding_codes <> '';
INSERT INTO assessment_codes (code, assessment_id, status, severity_rank, occurred_at, site,
  scanner_model)
SELECT finding_codes, assessment_id, status, severity_rank, occurred_at, site, scanner_model
FROM assessments WHERE finding_codes <> '';
ANALYZE;
"""


def test_postgresql_plan_of_the_code_filter_reads_the_code_index(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL's planner (the SQLite plan has its own test)")
    with store.engine.begin() as conn:
        conn.exec_driver_sql(_PG_FILL)
    filters = [
        QueueFilter(code="repeat_acquisition"),
        QueueFilter(code="repeat_acquisition", site="brain", severity="alert"),
        QueueFilter(code="repeat_acquisition", status="all"),
    ]
    with store.engine.connect() as conn:
        for f in filters:
            rows, counts = queue_statements(f, limit=50, offset=0)
            plans = []
            for stmt in (rows, counts):
                compiled = stmt.compile(conn, compile_kwargs={"literal_binds": True})
                plans.append("\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}")))
            rows_plan, counts_plan = plans
            # The page: a code index read backwards (newest first) under the limit, one
            # primary-key lookup per row of the page; no sort of every match, no full scan.
            used = r"Index (Only )?Scan Backward using ix_assessment_codes_(queue|flagged)"
            assert re.search(used, rows_plan), rows_plan
            assert "Seq Scan" not in rows_plan and "Sort" not in rows_plan, rows_plan
            # The counts: the rows of that code found through an index on assessment_codes
            # (which one, and whether index-only, depends on the visibility map), never the
            # assessments table.
            assert "Index Cond: ((code)::text = 'repeat_acquisition'" in counts_plan, counts_plan
            assert "on assessment_codes" in counts_plan, counts_plan
            assert "Seq Scan" not in counts_plan and "on assessments" not in counts_plan, (
                counts_plan
            )
    # Status "all": the page from the partial index of flagged rows, newest first.
    with store.engine.connect() as conn:
        rows, counts = queue_statements(QueueFilter(status="all"), limit=50, offset=0)
        compiled = rows.compile(conn, compile_kwargs={"literal_binds": True})
        plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
        assert "ix_assessments_flagged" in plan and "Sort" not in plan, plan
        compiled = counts.compile(conn, compile_kwargs={"literal_binds": True})
        plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
        assert "Seq Scan" not in plan, plan
