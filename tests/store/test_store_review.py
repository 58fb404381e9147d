"""Actions, the audit trail, optimistic concurrency, queue filters, levels and users."""

from __future__ import annotations

import json
from datetime import date

import pytest

from optimiser.errors import InputError
from store import Store
from store.assessments import QueueFilter, get, queue, write_assessments
from store.review import Action, ConflictError, apply, audit_of
from store.stats import local_levels, trend
from store.users import add_user, authenticate, list_users, set_disabled
from tests.store.factory import make_assessment


def _seed(store: Store) -> None:
    write_assessments(
        store,
        [
            make_assessment(1, site="prostate", findings=[("excess_coverage", "warning")]),
            make_assessment(2, site="brain", findings=[("above_reference_level", "alert")]),
            make_assessment(
                3, site="brain", scanner="Aquilion LB", findings=[("excess_coverage", "alert")]
            ),
            make_assessment(4, site="brain"),  # nothing to review
            make_assessment(5, site="prostate", findings=[("thin_reconstruction", "info")]),
        ],
    )


def test_queue_is_newest_first_with_filters_and_counts(store: Store) -> None:
    _seed(store)
    with store.sessions() as s:
        page = queue(s, QueueFilter())
        assert [r.assessment_id[-1] for r in page.rows] == ["3", "2", "1"]
        assert page.total == 3 and page.by_severity == {"warning": 1, "alert": 2}
        assert [r.assessment_id[-1] for r in queue(s, QueueFilter(site="brain")).rows] == [
            "3",
            "2",
        ]
        assert queue(s, QueueFilter(scanner="Aquilion LB")).total == 1
        assert queue(s, QueueFilter(severity="warning")).total == 1
        assert queue(s, QueueFilter(code="excess_coverage")).total == 2
        assert (
            queue(s, QueueFilter(date_from=date(2026, 3, 2), date_to=date(2026, 3, 2))).total == 3
        )
        assert queue(s, QueueFilter(date_from=date(2026, 3, 3))).total == 0
        hostile = "x' OR '1'='1"
        assert queue(s, QueueFilter(site=hostile, code=hostile, scanner=hostile)).total == 0


def test_actions_are_audited_with_before_and_after(store: Store) -> None:
    _seed(store)
    aid = make_assessment(2).assessment_id
    with store.sessions.begin() as s:
        apply(s, aid, Action("assign", "ann", 1, assignee="bob"))
        apply(s, aid, Action("comment", "bob", 2, comment="<script>alert(1)</script>"))
        apply(s, aid, Action("acknowledge", "bob", 2))
    with store.sessions() as s:
        trail = audit_of(s, aid)
        row = get(s, aid)
        assert row is not None
        assert (row.status, row.assignee, row.version) == ("acknowledged", "bob", 3)
        assert queue(s, QueueFilter()).total == 2
        assert queue(s, QueueFilter(status="acknowledged")).total == 1
    assert [(t.username, t.action) for t in trail] == [
        ("ann", "assign"),
        ("bob", "comment"),
        ("bob", "acknowledge"),
    ]
    assert json.loads(trail[0].before)["assignee"] is None
    assert json.loads(trail[0].after)["assignee"] == "bob"
    assert trail[1].comment == "<script>alert(1)</script>"
    assert json.loads(trail[2].after) == {
        "status": "acknowledged",
        "assignee": "bob",
        "justification": None,
        "version": 3,
    }


def test_justify_needs_a_reason(store: Store) -> None:
    _seed(store)
    with store.sessions.begin() as s, pytest.raises(InputError, match="reason is required"):
        apply(s, make_assessment(1).assessment_id, Action("justify", "ann", 1, reason="  "))


def test_a_stale_version_is_a_conflict_and_changes_nothing(store: Store) -> None:
    _seed(store)
    aid = make_assessment(1).assessment_id
    with store.sessions.begin() as s:
        apply(s, aid, Action("justify", "ann", 1, reason="patient re-positioned"))
    with store.sessions.begin() as s, pytest.raises(ConflictError, match="changed by ann"):
        apply(s, aid, Action("acknowledge", "bob", 1))
    with store.sessions() as s:
        row = get(s, aid)
        assert row is not None
        assert (row.status, row.version) == ("justified", 2)
        assert len(audit_of(s, aid)) == 1


def test_local_p75_is_the_nearest_rank_per_site_and_scanner(store: Store) -> None:
    values = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0]  # P75 nearest rank: 6th = 15
    write_assessments(
        store,
        [make_assessment(i, ctdivol_mgy=v, dlp_mgy_cm=v * 40) for i, v in enumerate(values)]
        + [make_assessment(50, site="brain", ctdivol_mgy=None)],
    )
    with store.sessions() as s:
        levels = {(lv.site, lv.scanner_model): lv for lv in local_levels(s)}
        months = trend(s, site="prostate")
    prostate = levels[("prostate", "SOMATOM go.Open Pro")]
    assert (prostate.n, prostate.p75_ctdivol_mgy, prostate.p75_dlp_mgy_cm) == (8, 15.0, 600.0)
    assert levels[("brain", "SOMATOM go.Open Pro")].p75_ctdivol_mgy is None
    assert [(m.month, m.n) for m in months] == [("2026-03", 8)]
    assert months[0].mean_ctdivol_mgy == pytest.approx(13.5)


def test_users_hash_authenticate_and_disable(store: Store) -> None:
    with store.sessions.begin() as s:
        add_user(s, "ann", "correct horse battery", "physicist")
        with pytest.raises(InputError, match="exists"):
            add_user(s, "ann", "another long one", "viewer")
    with store.sessions.begin() as s:
        user = list_users(s)[0]
        assert user.password_hash.startswith("$argon2id$")
        assert authenticate(s, "ann", "correct horse battery") is not None
        assert authenticate(s, "ann", "wrong password!") is None
        assert authenticate(s, "nobody", "correct horse battery") is None
        set_disabled(s, "ann")
    with store.sessions() as s:
        assert authenticate(s, "ann", "correct horse battery") is None
