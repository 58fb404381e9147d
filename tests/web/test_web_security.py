"""Access, CSRF, and hostile input in every filter and comment (stored and shown harmlessly)."""

from __future__ import annotations

import csv
import io

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from store import Store
from store.review import audit_of
from store.users import set_disabled
from tests.store.factory import make_assessment
from tests.web.conftest import HOSTILE, PASSWORD, token
from web.app import create_app

AID = make_assessment(2).assessment_id


def _routes(client: TestClient) -> list[tuple[str, str]]:
    out = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Route):
            path = route.path.replace("{assessment_id}", AID)
            out += [(m, path) for m in sorted(route.methods or ()) if m != "HEAD"]
    return out


def test_every_page_but_the_login_refuses_an_anonymous_request(anon: TestClient) -> None:
    routes = _routes(anon)
    assert len(routes) >= 15
    for method, path in routes:
        r = anon.request(method, path)
        if path == "/login" or path.startswith("/static/"):
            assert r.status_code in (200, 403), (method, path, r.status_code)  # 403: no CSRF
            continue
        if method == "GET":
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
        else:
            assert r.status_code == 401, (method, path)
        assert "SIM" not in r.text and "prostate" not in r.text


def test_session_cookie_is_httponly_and_samesite(anon: TestClient) -> None:
    r = anon.post("/login", data={"csrf": token(anon), "username": "ann", "password": PASSWORD})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "content-security-policy" in r.headers


def test_wrong_password_and_open_redirect(anon: TestClient) -> None:
    r = anon.post("/login", data={"csrf": token(anon), "username": "ann", "password": "nope"})
    assert r.status_code == 401 and "wrong password" in r.text
    r = anon.post(
        "/login",
        data={
            "csrf": token(anon),
            "username": "ann",
            "password": PASSWORD,
            "next": "//evil.example/",
        },
    )
    assert r.headers["location"] == "/"


def test_a_viewer_reads_but_cannot_act(viewer: TestClient, desk_store: Store) -> None:
    assert viewer.get("/").status_code == 200
    assert viewer.get(f"/a/{AID}").status_code == 200
    csrf = token(viewer, f"/a/{AID}")
    r = viewer.post(
        f"/a/{AID}/action",
        data={"csrf": csrf, "action": "acknowledge", "version": "1"},
    )
    assert r.status_code == 403
    with desk_store.sessions() as s:
        assert audit_of(s, AID) == []
    assert viewer.post("/logout", data={"csrf": csrf}).status_code == 303


def test_a_disabled_users_session_is_refused(physicist: TestClient, desk_store: Store) -> None:
    assert physicist.get("/").status_code == 200
    with desk_store.sessions.begin() as s:
        set_disabled(s, "ann")
    assert physicist.get("/").status_code == 303


@pytest.mark.parametrize("csrf", [None, "", "forged-token"])
def test_every_form_needs_the_csrf_token(
    physicist: TestClient, desk_store: Store, csrf: str | None
) -> None:
    data = {"action": "acknowledge", "version": "1"}
    if csrf is not None:
        data["csrf"] = csrf
    assert physicist.post(f"/a/{AID}/action", data=data).status_code == 403
    assert physicist.post("/logout", data=data).status_code == 403
    fresh = TestClient(create_app(desk_store, secret="test-secret"), follow_redirects=False)
    login_data = {"username": "ann", "password": PASSWORD, **({"csrf": csrf} if csrf else {})}
    assert fresh.post("/login", data=login_data).status_code == 403
    with desk_store.sessions() as s:
        assert audit_of(s, AID) == []


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_filters_are_harmless(physicist: TestClient, payload: str) -> None:
    for name in ("site", "scanner", "severity", "code", "from", "to", "status", "page"):
        for path in ("/", "/queue/rows", "/queue.csv", "/trends", "/trends.csv"):
            r = physicist.get(path, params={name: payload})
            assert r.status_code == 200, (path, name, r.status_code)
            if r.headers["content-type"].startswith("text/html"):
                assert "<script>alert" not in r.text and "<img src=x" not in r.text
            else:  # CSV is data, sent as an attachment: a cell never starts a formula
                assert "\n=" not in r.text and ",=" not in r.text
    # the store is intact and still answers
    r = physicist.get("/")
    assert "prostate" in r.text and "brain" in r.text


def test_hostile_stored_text_and_comments_are_shown_escaped(
    physicist: TestClient, desk_store: Store
) -> None:
    hostile_id = make_assessment(5).assessment_id
    page = physicist.get("/").text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "<script>alert" not in page and "<img src=x" not in page
    csrf = token(physicist, f"/a/{hostile_id}")
    for i, payload in enumerate(HOSTILE):
        r = physicist.post(
            f"/a/{hostile_id}/action",
            data={"csrf": csrf, "action": "comment", "version": "1", "comment": payload},
        )
        assert r.status_code == 303, r.text
        r = physicist.post(
            f"/a/{hostile_id}/action",
            data={"csrf": csrf, "action": "assign", "version": str(i + 1), "assignee": payload},
        )
        assert r.status_code == 303, r.text
    page = physicist.get(f"/a/{hostile_id}").text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert page.count("&lt;script&gt;") >= 2
    with desk_store.sessions() as s:
        comments = [a.comment for a in audit_of(s, hostile_id) if a.action == "comment"]
    assert comments == HOSTILE  # stored exactly as typed
    rows = list(csv.reader(io.StringIO(physicist.get(f"/a/{hostile_id}/audit.csv").text)))
    shown = [row[7] for row in rows[1:] if row[4] == "comment"]
    assert '\'=HYPERLINK("http://evil")' in shown  # no formula runs in a spreadsheet
    assert all(not c.startswith(("=", "+", "@")) for c in shown)


def test_static_files_need_no_login_and_plotly_is_served_locally(anon: TestClient) -> None:
    r = anon.get("/static/plotly.min.js")
    assert r.status_code == 200 and len(r.content) > 1_000_000
    page = TestClient(anon.app).get("/login").text
    assert 'src="/static/plotly.min.js"' in page and "cdn" not in page.lower()
