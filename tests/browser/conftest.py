"""Playwright fixtures: one headless Debian Chromium per session, a fresh context per test.

Playwright never downloads a browser here: it drives the system ``/usr/bin/chromium``. Every context
reports Content-Security-Policy violations (the ``securitypolicyviolation`` event and Chromium's own
console errors); a test whose pages caused one fails, so every browser test checks that the pages work
under the policy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from questboard.testing import http_ok, wait_for, web_process
from shared.webserver import web_concurrency

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS_DIR = Path("/tmp/qb-shots")
CSP_REPORTER_JS = """
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.blockedURI || "inline"} on ${e.documentURI}`;
  console.error(`CSP violation: ${e.violatedDirective} blocked ${where}`);
}, true);
"""


def is_csp_report(text: str) -> bool:
    """A console message about a Content-Security-Policy violation (ours or Chromium's)."""
    return "CSP violation" in text or "Content Security Policy" in text or "Content-Security-Policy" in text


def watch_csp(context) -> list[str]:
    """Collect every CSP violation reported in ``context``'s pages (a list that fills as they happen)."""
    found: list[str] = []
    context.add_init_script(CSP_REPORTER_JS)
    context.on("console", lambda message: found.append(message.text) if is_csp_report(message.text) else None)
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"browser tests need Debian chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need the 'playwright' Python package (pip install -e '.[test]')")

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def context(browser) -> Iterator[object]:
    """A fresh browser context (own cookies and storage) for every test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    violations = watch_csp(context)
    try:
        yield context
    finally:
        context.close()
    assert violations == [], f"the pages broke their Content-Security-Policy: {violations}"


@pytest.fixture
def page(context) -> object:
    return context.new_page()


@pytest.fixture(scope="session")
def shots_dir() -> Path:
    """Screenshots for a human to look at (not asserted)."""
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    return SHOTS_DIR


@pytest.fixture
def live_server(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """The web server as shipped: as many processes as `questboard web` runs by default (one per core)."""
    proc, base_url = web_process(env, tmp_path, workers=web_concurrency(env))
    proc.start()
    try:
        # Each process imports the app: on a loaded 2-core machine that takes a while.
        wait_for(lambda: http_ok(base_url + "/healthz") or not proc.alive(), 90, what="web server")
        assert proc.alive(), proc.output()[-3000:]
        yield base_url
    finally:
        proc.kill()  # the test is over: no graceful stop (ManagedProcess.kill)
