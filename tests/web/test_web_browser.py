"""The desk in a real browser: Playwright (its bundled driver) driving Debian's Chromium.

Nothing is downloaded at run time: ``executable_path`` names /usr/bin/chromium. The server is
uvicorn in a thread on a free loopback port, over a store filled with a simulated CT-sim day
(the real pipeline) and eight months of history. Screenshots are kept as test artefacts in a
pytest temporary folder whose path the test prints; with ``LOWDOSE_README_SCREENSHOTS=DIR`` the
queue and acquisition screenshots are also written to DIR (docs/img for the README).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store import Store, open_store
from store.assessments import write_assessments
from store.users import add_user
from tests.realparts import require_tool
from tests.store.factory import make_assessment
from tests.web.artefacts import SCREENSHOT_DIRS
from tests.web.conftest import PASSWORD
from web.app import create_app

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
SITES = ("prostate", "lung_3d", "head_neck", "breast", "brain")


def _history(n: int = 320) -> list:  # type: ignore[type-arg]
    """Eight months of a department's acquisitions (deterministic), some flagged."""
    start = datetime(2025, 5, 1, 8, tzinfo=UTC)
    out = []
    for i in range(n):
        site = SITES[i % len(SITES)]
        flagged = i % 7 == 0
        out.append(
            make_assessment(
                10_000 + i,
                site=site,
                scanner=("LightSpeed RT16", "Brilliance Big Bore")[i % 2],
                ctdivol_mgy=8.0 + (i * 37 % 100) / 10.0,
                dlp_mgy_cm=300.0 + (i * 53 % 400),
                performed_at=start + timedelta(hours=18 * i),
                findings=[("excess_coverage", "warning")] if flagged else [],
            )
        )
    return out


def _simulated_day() -> list:  # type: ignore[type-arg]
    from lowdose.commands.demo import assess_day
    from simulator import simulate_feed

    assessments, _ = assess_day(simulate_feed(16, seed=20), show_progress=False)
    return assessments


@pytest.fixture(scope="module")
def desk_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store]]:
    import uvicorn

    db = open_store(f"sqlite:///{tmp_path_factory.mktemp('browser') / 'desk.db'}")
    write_assessments(db, _history() + _simulated_day())
    with db.sessions.begin() as s:
        add_user(s, "ann", PASSWORD, "physicist")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(db, secret="browser-test"), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 60 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", db
    server.should_exit = True
    thread.join(timeout=30)
    db.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = require_tool("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def test_log_in_filter_open_justify_audit_and_trend(
    desk_url: tuple[str, Store], browser: object, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from playwright.sync_api import Browser, expect

    url, _db = desk_url
    assert isinstance(browser, Browser)
    shots = tmp_path_factory.mktemp("desk-screenshots")
    SCREENSHOT_DIRS.append(shots)
    readme = os.environ.get("LOWDOSE_README_SCREENSHOTS")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(30_000)

    page.goto(url + "/")
    expect(page).to_have_url(url + "/login")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("table.queue")).to_be_visible()
    page.screenshot(path=shots / "1-queue.png")
    if readme:
        page.screenshot(path=Path(readme) / "review-queue.png")

    page.select_option("select[name=severity]", "alert")
    page.click("#filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"[?&]severity=alert"))
    site = page.locator("table.queue tbody tr").first.locator("td").nth(2).inner_text()
    page.select_option("select[name=site]", site)
    page.click("#filters button[type=submit]")
    expect(page).to_have_url(re.compile(rf"[?&]site={re.escape(site)}&"))
    rows = page.locator("table.queue tbody tr")
    assert rows.count() >= 1
    for i in range(rows.count()):
        assert rows.nth(i).locator("td").nth(2).inner_text() == site
        assert rows.nth(i).locator("td").nth(1).inner_text() == "alert"
    page.screenshot(path=shots / "2-queue-filtered.png")

    rows.first.locator("a").click()
    expect(page.locator("#zplot .main-svg").first).to_be_visible()
    expect(page.locator("h1 .status")).to_have_text("open")
    page.screenshot(path=shots / "3-acquisition.png", full_page=True)
    if readme:
        page.screenshot(path=Path(readme) / "review-acquisition.png", full_page=True)

    page.fill("#justify-form input[name=reason]", "planned re-simulation after bladder filling")
    page.click("#justify-form button[type=submit]")
    expect(page.locator("h1 .status")).to_have_text("justified")
    audit = page.locator("#audit tbody tr").first
    expect(audit).to_contain_text("ann")
    expect(audit).to_contain_text("justify")
    expect(audit).to_contain_text("planned re-simulation after bladder filling")
    page.screenshot(path=shots / "4-justified.png", full_page=True)

    page.goto(url + "/trends?site=prostate")
    plot = page.locator("#trend-ctdivol .main-svg").first
    expect(plot).to_be_visible()
    assert page.locator("#trend-ctdivol .scatterlayer .point").count() > 10
    page.screenshot(path=shots / "5-trends.png", full_page=True)
    assert errors == [], errors


def test_the_queue_updates_without_a_reload(desk_url: tuple[str, Store], browser: object) -> None:
    from playwright.sync_api import Browser, expect

    url, db = desk_url
    assert isinstance(browser, Browser)
    page = browser.new_page()
    page.set_default_timeout(30_000)
    page.goto(url + "/login")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("table.queue")).to_be_visible()
    page.evaluate("window.__same_document = true")
    newest = make_assessment(
        99_999, site="brain", description="arrived while the queue was open",
        performed_at=datetime(2027, 1, 1, tzinfo=UTC), findings=[("dose_check_exceeded", "alert")],
    )  # fmt: skip
    write_assessments(db, [newest])
    expect(page.locator("table.queue tbody tr").first).to_contain_text(
        "arrived while the queue was open", timeout=30_000
    )
    assert page.evaluate("window.__same_document") is True  # no reload happened
