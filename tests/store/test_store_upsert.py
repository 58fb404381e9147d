"""Idempotent writes by assessment_id: at-least-once delivery gives exactly one row."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from store import Store, open_store
from store.assessments import get, upsert_assessments, write_assessments
from store.models import AssessmentRow, FindingRow
from store.review import Action, apply
from tests.store.factory import make_assessment


def _counts(store: Store) -> tuple[int, int]:
    with store.sessions() as s:
        return (
            int(s.scalar(select(func.count()).select_from(AssessmentRow)) or 0),
            int(s.scalar(select(func.count()).select_from(FindingRow)) or 0),
        )


def test_redelivery_gives_one_row_and_keeps_the_whole_document(store: Store) -> None:
    a = make_assessment(1, findings=[("excess_coverage", "alert"), ("thin_reconstruction", "info")])
    for _ in range(3):
        write_assessments(store, [a, a])
    assert _counts(store) == (1, 2)
    with store.sessions() as s:
        row = get(s, a.assessment_id)
        assert row is not None
        assert row.status == "open" and row.severity_rank == 2 and row.version == 1
        assert row.finding_codes == "excess_coverage thin_reconstruction"
        assert row.scanner_model == "SOMATOM go.Open Pro"
        assert row.document == a.to_json()


def test_info_only_is_stored_but_not_queued(store: Store) -> None:
    write_assessments(store, [make_assessment(2, findings=[("thin_reconstruction", "info")])])
    write_assessments(store, [make_assessment(3)])
    with store.sessions() as s:
        assert {r.status for r in s.scalars(select(AssessmentRow))} == {"none"}


def test_redelivery_keeps_the_review_state(store: Store) -> None:
    a = make_assessment(4, findings=[("excess_coverage", "warning")])
    write_assessments(store, [a])
    with store.sessions.begin() as s:
        apply(s, a.assessment_id, Action("justify", "ann", seen_version=1, reason="re-plan"))
    write_assessments(store, [a])
    with store.sessions() as s:
        row = get(s, a.assessment_id)
        assert row is not None
        assert (row.status, row.justification, row.version) == ("justified", "re-plan", 2)


def test_changed_facts_replace_the_findings(store: Store) -> None:
    write_assessments(store, [make_assessment(5, findings=[("excess_coverage", "warning")])])
    write_assessments(store, [make_assessment(5, findings=[("above_reference_level", "alert")])])
    with store.sessions() as s:
        codes = [f.code for f in s.scalars(select(FindingRow))]
        row = get(s, make_assessment(5).assessment_id)
        assert row is not None
    assert codes == ["above_reference_level"]
    assert (row.severity_rank, row.status) == (2, "open")


def test_concurrent_upserts_of_one_id_leave_one_row_and_one_set_of_findings(store: Store) -> None:
    a = make_assessment(6, findings=[("excess_coverage", "alert"), ("repeat_acquisition", "alert")])
    others = [make_assessment(100 + i, findings=[("excess_coverage", "warning")]) for i in range(5)]
    writers = 6
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        own = open_store(store.url)  # one connection pool per writer, like separate processes
        try:
            barrier.wait(timeout=60)
            for _ in range(5):
                with own.sessions.begin() as s:
                    upsert_assessments(s, [a, others[i % len(others)]])
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert _counts(store) == (1 + len(others), 2 + len(others))
