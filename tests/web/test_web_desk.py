"""The desk's pages and actions in-process: queue, acquisition, actions, conflict, exports."""

from __future__ import annotations

import csv
import io
import re

from starlette.testclient import TestClient

from store import Store
from store.review import audit_of
from tests.store.factory import make_assessment
from tests.web.conftest import login, token
from web.app import create_app


def test_queue_lists_open_flagged_newest_first_with_counts(physicist: TestClient) -> None:
    page = physicist.get("/").text
    ids = re.findall(r'href="/a/(asm-\d+)"', page)
    assert ids == [make_assessment(n).assessment_id for n in (5, 3, 2, 1)]
    assert re.search(r'<strong id="total">4</strong>', page)
    assert "3 alert" in page and "1 warning" in page
    brain = physicist.get("/", params={"site": "brain", "severity": "alert"}).text
    assert re.findall(r'href="/a/(asm-\d+)"', brain) == [
        make_assessment(n).assessment_id for n in (3, 2)
    ]
    rows = physicist.get("/queue/rows", params={"code": "excess_coverage"}).text
    assert len(re.findall(r'href="/a/', rows)) == 2


def test_queue_csv_exports_what_the_filter_selects(physicist: TestClient) -> None:
    r = physicist.get("/queue.csv", params={"site": "brain"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["site"] for row in rows] == ["brain", "brain"]
    assert {row["severity"] for row in rows} == {"alert"}


def test_acquisition_page_shows_findings_proposal_and_z_picture(physicist: TestClient) -> None:
    page = physicist.get(f"/a/{make_assessment(2).assessment_id}").text
    assert "above_reference_level" in page and "planning-ct.md section 4" in page
    assert "saving <strong>120.0 mGy·cm</strong>" in page
    assert 'class="plot-data" data-target="zplot"' in page
    assert "DLP per 1 cm slab" in page and "over-ranging" in page


def test_justify_needs_a_reason_and_is_audited(physicist: TestClient, desk_store: Store) -> None:
    aid = make_assessment(1).assessment_id
    csrf = token(physicist, f"/a/{aid}")
    r = physicist.post(
        f"/a/{aid}/action", data={"csrf": csrf, "action": "justify", "version": "1", "reason": ""}
    )
    assert r.status_code == 400 and "reason is required" in r.text
    r = physicist.post(
        f"/a/{aid}/action",
        data={"csrf": csrf, "action": "justify", "version": "1", "reason": "re-simulation"},
    )
    assert r.status_code == 303
    page = physicist.get(f"/a/{aid}").text
    assert "re-simulation" in page and "justified" in page
    with desk_store.sessions() as s:
        [record] = audit_of(s, aid)
    assert (record.username, record.action, record.comment) == ("ann", "justify", "re-simulation")
    assert aid not in physicist.get("/").text  # left the open queue
    assert aid in physicist.get("/", params={"status": "justified"}).text


def test_two_physicists_at_once_get_a_clear_conflict(
    physicist: TestClient, desk_store: Store
) -> None:
    aid = make_assessment(2).assessment_id
    other = login(TestClient(create_app(desk_store, secret="test-secret"),
                             follow_redirects=False), "ann")  # fmt: skip
    mine, theirs = token(physicist, f"/a/{aid}"), token(other, f"/a/{aid}")
    r = other.post(
        f"/a/{aid}/action",
        data={"csrf": theirs, "action": "justify", "version": "1", "reason": "trial protocol"},
    )
    assert r.status_code == 303
    r = physicist.post(
        f"/a/{aid}/action", data={"csrf": mine, "action": "acknowledge", "version": "1"}
    )
    assert r.status_code == 409
    assert "Conflict" in r.text and "changed by ann (justify)" in r.text
    with desk_store.sessions() as s:
        assert [a.action for a in audit_of(s, aid)] == ["justify"]


def test_trends_levels_and_audit_pages_and_exports(physicist: TestClient) -> None:
    page = physicist.get("/trends", params={"site": "brain"}).text
    for key in ("ctdivol", "dlp", "excess", "flagged"):
        assert f'data-target="trend-{key}"' in page
    assert "41.0" in page  # the cited brain CTDIvol level
    rows = list(csv.DictReader(io.StringIO(physicist.get("/trends.csv?site=brain").text)))
    assert rows and rows[0]["n"] == "3"
    levels = physicist.get("/levels").text
    assert "prostate" in levels and "local P75" in levels
    assert physicist.get("/levels.csv").text.startswith("site,scanner_model,n")
    assert physicist.get("/audit").status_code == 200
    assert physicist.get("/audit.csv").text.startswith("id,assessment_id")


def test_unknown_acquisition_is_404(physicist: TestClient) -> None:
    r = physicist.get("/a/asm-nope")
    assert r.status_code == 404 and "asm-nope" in r.text
