"""Reverse-proxy header authentication (single sign-on): off by default; the header is honoured
only from a trusted proxy's address, names an enabled local user whose role applies, and CSRF
still guards every POST."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from lowdose.main import main
from optimiser.errors import ConfigurationError
from store import Store
from store.review import audit_of
from store.users import set_disabled
from tests.store.factory import make_assessment
from web.app import create_app
from web.auth import HEADER_ENV, PROXIES_ENV, ProxyAuth, proxy_auth_from

AID = make_assessment(2).assessment_id
PROXY = "10.1.2.3"
SSO = ProxyAuth.parse("X-Remote-User", f"{PROXY}, 192.168.7.0/24")


def _client(store: Store, peer: str, proxy_auth: ProxyAuth | None = SSO) -> TestClient:
    app = create_app(store, secret="test-secret", proxy_auth=proxy_auth)
    return TestClient(app, follow_redirects=False, client=(peer, 40_000))


def _as(user: str) -> dict[str, str]:
    return {"X-Remote-User": user}


def _token(client: TestClient, user: str, path: str = f"/a/{AID}") -> str:
    """The session's CSRF token from a page that ``user`` (named by the proxy) reads."""
    match = re.search(r'name="csrf" value="([^"]+)"', client.get(path, headers=_as(user)).text)
    assert match, f"no CSRF field on {path}"
    return match.group(1)


def test_header_is_honoured_from_a_trusted_proxy(desk_store: Store) -> None:
    for peer in (PROXY, "192.168.7.200"):
        client = _client(desk_store, peer)
        r = client.get("/", headers=_as("ann"))
        assert r.status_code == 200, r.text
        assert "ann (physicist)" in r.text and AID in r.text
    # The role decides: a physicist's action goes through (with the session's CSRF token).
    csrf = _token(client, "ann")
    r = client.post(
        f"/a/{AID}/action",
        data={"csrf": csrf, "action": "acknowledge", "version": "1"},
        headers=_as("ann"),
    )
    assert r.status_code == 303, r.text
    with desk_store.sessions() as s:
        assert [(a.username, a.action) for a in audit_of(s, AID)] == [("ann", "acknowledge")]


def test_header_is_ignored_from_any_other_peer(desk_store: Store) -> None:
    for peer in ("10.1.2.4", "192.168.8.1", "127.0.0.1", "testclient", "::1"):
        client = _client(desk_store, peer)
        r = client.get("/", headers=_as("ann"))
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), peer
        assert AID not in r.text
        r = client.post(f"/a/{AID}/action", data={"action": "acknowledge", "version": "1"},
                        headers=_as("ann"))  # fmt: skip
        assert r.status_code == 401, peer
    with desk_store.sessions() as s:
        assert audit_of(s, AID) == []


def test_unknown_user_is_refused(desk_store: Store) -> None:
    r = _client(desk_store, PROXY).get("/", headers=_as("mallory"))
    assert r.status_code == 403
    assert "mallory" in r.text and "X-Remote-User" in r.text and "lowdose users add" in r.text
    assert AID not in r.text


def test_disabled_user_is_refused(desk_store: Store) -> None:
    client = _client(desk_store, PROXY)
    assert client.get("/", headers=_as("ann")).status_code == 200
    with desk_store.sessions.begin() as s:
        set_disabled(s, "ann")
    r = client.get("/", headers=_as("ann"))
    assert r.status_code == 403 and "disabled" in r.text and AID not in r.text


def test_a_viewer_named_by_the_proxy_cannot_act(desk_store: Store) -> None:
    client = _client(desk_store, PROXY)
    r = client.get(f"/a/{AID}", headers=_as("vic"))
    assert r.status_code == 200 and "vic (viewer)" in r.text
    r = client.post(
        f"/a/{AID}/action",
        data={"csrf": _token(client, "vic"), "action": "acknowledge", "version": "1"},
        headers=_as("vic"),
    )
    assert r.status_code == 403 and "viewer" in r.text
    with desk_store.sessions() as s:
        assert audit_of(s, AID) == []


def test_csrf_token_is_still_required(desk_store: Store) -> None:
    client = _client(desk_store, PROXY)
    client.get(f"/a/{AID}", headers=_as("ann"))  # the session (and its token) exists
    for csrf in (None, "forged"):
        data = {"action": "acknowledge", "version": "1"} | ({"csrf": csrf} if csrf else {})
        r = client.post(f"/a/{AID}/action", data=data, headers=_as("ann"))
        assert r.status_code == 403 and "CSRF" in r.text, csrf
    with desk_store.sessions() as s:
        assert audit_of(s, AID) == []


def test_a_repeated_header_is_refused(desk_store: Store) -> None:
    # A proxy that appends instead of replacing would pass the client's own value first.
    client = _client(desk_store, PROXY)
    r = client.get("/", headers=[("X-Remote-User", "ann"), ("X-Remote-User", "vic")])
    assert r.status_code == 403 and "more than once" in r.text and AID not in r.text


def test_off_by_default(desk_store: Store) -> None:
    client = _client(desk_store, PROXY, proxy_auth=None)
    r = client.get("/", headers=_as("ann"))
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert proxy_auth_from({}) is None
    assert proxy_auth_from({"LOWDOSE_STORE_URL": "x.db"}) is None


def test_settings_from_the_environment_are_checked() -> None:
    sso = proxy_auth_from({HEADER_ENV: "X-Forwarded-User", PROXIES_ENV: "10.0.0.1,fd00::/64"})
    assert sso is not None and sso.header == "X-Forwarded-User"
    assert sso.trusts(("10.0.0.1", 1)) and sso.trusts(("fd00::9", 1))
    assert not sso.trusts(("10.0.0.2", 1)) and not sso.trusts(None)
    with pytest.raises(ConfigurationError, match=PROXIES_ENV):
        proxy_auth_from({HEADER_ENV: "X-Remote-User"})
    with pytest.raises(ConfigurationError, match=HEADER_ENV):
        proxy_auth_from({PROXIES_ENV: "10.0.0.1"})
    with pytest.raises(ConfigurationError, match=r"'proxy\.example\.org'"):
        proxy_auth_from({HEADER_ENV: "X-Remote-User", PROXIES_ENV: "proxy.example.org"})
    with pytest.raises(ConfigurationError, match="header name"):
        proxy_auth_from({HEADER_ENV: "X Remote User", PROXIES_ENV: "10.0.0.1"})
    with pytest.raises(ConfigurationError, match="any address"):
        proxy_auth_from({HEADER_ENV: "X-Remote-User", PROXIES_ENV: "0.0.0.0/0"})


def test_lowdose_review_refuses_half_a_setting_before_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(HEADER_ENV, raising=False)
    monkeypatch.setenv(PROXIES_ENV, "10.0.0.1")
    store = tmp_path / "desk.db"
    assert main(["review", "--store", str(store)]) == 1
    assert HEADER_ENV in capsys.readouterr().err
    code = main(["review", "--store", str(store), "--proxy-user-header", "X-Remote-User",
                 "--trusted-proxies", "*"])  # fmt: skip
    assert code == 1 and "'*' is not an IP address" in capsys.readouterr().err
    assert not store.exists()  # refused before the store was opened or anything served
