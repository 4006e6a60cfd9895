"""A real browser against a real server: Debian's Chromium driven by Playwright, and
`tradeflow serve` on a SQLite file of its own with the demo set up.

Every page the browser opens is watched: an error in its scripts, a dialog, a
Content-Security-Policy violation or a script setting ``window.__xss`` (what the XSS
tests' payloads do) fails the test, whichever page it happened on. (Chromium reports a
violation also for an event handler in markup a sanitizer parses, which would never run:
the XSS tests switch the policy off to see what escaping alone lets through.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cli.demo import PASSWORD
from engine.storage import Database
from engine.tradeflow import Tradeflow
from tests import command
from tests.conftest import ROOT
from tests.test_e2e import TRADEFLOW, _free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = ROOT / "var" / "screenshots"

# Runs in every page before its own scripts (Playwright's init script: no CSP applies).
WATCH = """
document.addEventListener("securitypolicyviolation", (e) => window.__tradeflowSeen(
  "violation",
  `${e.effectiveDirective} blocked ${e.blockedURI} ${e.sample} at ${e.sourceFile}:${e.lineNumber}`,
));
Object.defineProperty(window, "__xss", {
  configurable: false,
  get: () => undefined,
  set: (where) => window.__tradeflowSeen("xss", String(where)),
});
"""


@dataclass
class Seen:
    """What the pages did that they never should."""

    xss: list[str] = field(default_factory=list)  # payloads that ran, by where they were
    violations: list[str] = field(default_factory=list)  # what the CSP had to block
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # uncaught errors in the pages' scripts

    def note(self, kind: str, what: str) -> None:
        {"xss": self.xss, "violation": self.violations}[kind].append(what)


@contextmanager
def serve(tmp: Path, plant: Callable[[Tradeflow], Any] | None = None) -> Iterator[str]:
    """`tradeflow demo`, then ``plant`` on its database, then `tradeflow serve`."""
    url = f"sqlite:///{tmp}/site.db"
    env = {**os.environ, "TRADEFLOW_DATABASE_URL": url}
    env["TRADEFLOW_SECRET_FILE"] = str(tmp / "secret")
    demo = command.tradeflow("demo", env=env)
    assert demo.returncode == 0, demo.stderr
    if plant is not None:
        db = Database(url)
        plant(Tradeflow(db))
        db.engine.dispose()
    port = _free_port()
    server = subprocess.Popen(
        [TRADEFLOW, "serve", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    site = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(site + "/api/v1/health", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            raise AssertionError(f"tradeflow serve did not come up at {site}")
        yield site
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo, served."""
    with serve(tmp_path_factory.mktemp("site")) as url:
        yield url


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def csp_bypassed() -> bool:
    """Whether the browser ignores the pages' Content-Security-Policy: the pages work with
    it (no violation), the XSS tests ignore it (escaping alone must hold)."""
    return False


@pytest.fixture
def page(site: str, seen: Seen, csp_bypassed: bool) -> Iterator[Any]:
    """A fresh browser on the site; fails the test on anything in ``seen``."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(
            locale="en-US",
            viewport={"width": 1280, "height": 900},
            accept_downloads=True,
            bypass_csp=csp_bypassed,
        )
        context.expose_binding("__tradeflowSeen", lambda _source, kind, what: seen.note(kind, what))
        context.add_init_script(WATCH)
        page = context.new_page()
        page.on("pageerror", lambda exc: seen.errors.append(str(exc)))
        page.on("dialog", lambda dialog: (seen.dialogs.append(dialog.message), dialog.dismiss()))
        page.set_default_timeout(15_000)
        yield page
        page.wait_for_timeout(200)  # an image's onerror fires after the page has loaded
        browser.close()
    assert seen.xss == [], f"planted scripts ran: {seen.xss}"
    assert seen.dialogs == [], f"dialogs opened: {seen.dialogs}"
    assert seen.errors == [], f"errors in the page's scripts: {seen.errors}"
    assert seen.violations == [], f"the Content-Security-Policy had to block: {seen.violations}"


def shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # something was drawn
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def until(page: Any, expression: str, timeout: float = 15.0) -> None:
    """Wait until ``expression`` is true in the page. (Playwright's wait_for_function
    compiles it with eval, which the pages' Content-Security-Policy refuses.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"Boolean({expression})"):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        time.sleep(0.05)


def sign_in(page: Any, site: str, name: str) -> None:
    page.goto(site + "/")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(site + "/")
