"""Desk fixtures: a seeded SQLite store with a physicist and a viewer, an in-process client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from store import Store, open_store, users
from store.assessments import write_assessments
from store.users import add_user
from tests.store.factory import make_assessment
from tests.web.artefacts import SCREENSHOT_DIRS
from web.app import create_app

PASSWORD = "correct horse battery"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for folder in SCREENSHOT_DIRS:
        terminalreporter.write_line(f"review desk screenshots (test artefacts): {folder}")


HOSTILE = [
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "' OR '1'='1' --",
    "x'; DROP TABLE assessments; --",
    '=HYPERLINK("http://evil")',
]


def seed(store: Store) -> None:
    write_assessments(
        store,
        [
            make_assessment(1, site="prostate", findings=[("excess_coverage", "warning")]),
            make_assessment(2, site="brain", findings=[("above_reference_level", "alert")]),
            make_assessment(
                3, site="brain", scanner="Aquilion LB", findings=[("excess_coverage", "alert")]
            ),
            make_assessment(4, site="brain"),
            # hostile text in every stored field the pages show
            make_assessment(
                5,
                site="prostate",
                findings=[("repeat_acquisition", "alert")],
                description=HOSTILE[0],
                scanner=HOSTILE[1],
            ),
        ],
    )
    with store.sessions.begin() as s:
        add_user(s, "ann", PASSWORD, "physicist")
        add_user(s, "vic", PASSWORD, "viewer")


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with small costs in tests (the desk uses argon2-cffi's defaults, ~1 s each
    on this loaded machine); the hash format and the verification path are the same."""
    monkeypatch.setattr(
        users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def desk_store(tmp_path: Path) -> Iterator[Store]:
    db = open_store(f"sqlite:///{tmp_path / 'desk.db'}")
    seed(db)
    yield db
    db.close()


@pytest.fixture
def anon(desk_store: Store) -> TestClient:
    return TestClient(create_app(desk_store, secret="test-secret"), follow_redirects=False)


def token(client: TestClient, path: str = "/login") -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert match, f"no CSRF field on {path}"
    return match.group(1)


def login(client: TestClient, user: str) -> TestClient:
    r = client.post(
        "/login", data={"csrf": token(client), "username": user, "password": PASSWORD, "next": "/"}
    )
    assert r.status_code == 303, r.text
    return client


@pytest.fixture
def physicist(desk_store: Store) -> TestClient:
    return login(TestClient(create_app(desk_store, secret="test-secret"), follow_redirects=False),
                 "ann")  # fmt: skip


@pytest.fixture
def viewer(desk_store: Store) -> TestClient:
    return login(TestClient(create_app(desk_store, secret="test-secret"), follow_redirects=False),
                 "vic")  # fmt: skip
