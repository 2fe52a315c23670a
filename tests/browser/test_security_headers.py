"""Security headers as a browser enforces them (contract §9): headless Chromium against the real gunicorn +
Socket.IO server. Another origin cannot frame the operator console (clickjacking of its buttons), and the
pages work under their Content-Security-Policy: live progress, the console's charts and the forms, with
no violation (every browser test also checks that, see conftest)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from questboard.testing import wait_for
from tests.browser.conftest import watch_csp

pytestmark = pytest.mark.browser

LIVE_MS = 30_000


def log_in(page: Page, accounts, person, live_server: str) -> None:
    response = page.goto(accounts.create_magic_link(person.user, live_server))
    assert response is not None and response.ok, response and response.status
    expect(page.locator("header.topbar .who")).to_have_text(person.user.email)


@pytest.fixture
def framing_site(live_server: str) -> Iterator[str]:
    """An attacker's page on another port of the same host, framing /admin; yields its URL."""
    page = (
        "<!doctype html><title>Win a prize</title><h1>Click the button</h1>"
        f'<iframe id="victim" src="{live_server}/admin" width="1000" height="700"'
        " onload=\"document.body.dataset.framed = 'loaded'\"></iframe>"
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def own_context(browser) -> Iterator[tuple[object, list[str]]]:
    """A context whose CSP reports the test itself checks (the shared fixture would fail on them)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    try:
        yield context, watch_csp(context)
    finally:
        context.close()


def test_another_origin_cannot_frame_the_operator_console(
    browser, live_server, accounts, admin, framing_site
):
    with own_context(browser) as (context, reports):
        page = context.new_page()
        log_in(page, accounts, admin, live_server)
        page.goto(f"{live_server}/admin")
        expect(page.locator("#console")).to_be_visible()  # the admin sees the console at its own address

        page.goto(framing_site)
        expect(page.locator("body")).to_have_attribute("data-framed", "loaded")
        frames = [frame for frame in page.frames if frame is not page.main_frame]
        assert len(frames) == 1
        # The frame never gets the console: Chromium shows its error page instead.
        expect(page.frame_locator("#victim").locator("#console")).to_have_count(0)
        expect(page.frame_locator("#victim").get_by_role("button", name="Pause")).to_have_count(0)
        assert frames[0].locator("#console").count() == 0
        wait_for(lambda: any("frame-ancestors" in text for text in reports), 10, what="the refusal")


def test_the_pages_carry_the_policy_and_work_under_it(page: Page, live_server, accounts, admin, start_worker):
    policies: dict[str, str] = {}
    page.on("response", lambda r: policies.setdefault(r.url, r.headers.get("content-security-policy", "")))
    log_in(page, accounts, admin, live_server)
    job = requests.post(
        f"{live_server}/api/jobs",
        json={"type": "diagnostics.probe", "params": {"steps": 4, "step_ms": 300}},
        headers=admin.headers,
        timeout=10,
    ).json()

    # Live progress: the job page's bar (its width is set by the script, no inline style) follows the job.
    page.goto(f"{live_server}/jobs/{job['id']}")
    expect(page.locator("#job [data-role=status]")).to_have_text("queued", timeout=LIVE_MS)
    start_worker()
    expect(page.locator("#job [data-role=status]")).to_have_text("succeeded", timeout=LIVE_MS)
    expect(page.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("[data-role=fill]")).to_have_attribute("style", "width: 100%;")

    # A form: the search box in the top bar (styled from app.css) submits to the search page.
    page.get_by_role("searchbox", name="Search characters").fill("nobody")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server}/search?q=nobody")

    # The console: its charts are drawn by uPlot and its styles come from admin.css.
    page.goto(f"{live_server}/admin")
    expect(page.locator("#chart-succeeded canvas")).to_have_count(1)
    expect(page.locator(".tiles")).to_have_css("display", "grid")

    ours = {url: csp for url, csp in policies.items() if url.startswith(live_server)}
    assert any(url.endswith(".js") for url in ours) and any(url.endswith(".css") for url in ours)
    for url, csp in ours.items():
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, url
        assert "unsafe-inline" not in csp, url


def test_an_injected_inline_script_is_refused_and_reported(browser, live_server, accounts, alice):
    with own_context(browser) as (context, reports):
        page = context.new_page()
        log_in(page, accounts, alice, live_server)
        with pytest.raises(PlaywrightError):
            page.add_script_tag(content="document.body.dataset.pwned = 'yes'")
        assert page.locator("body").get_attribute("data-pwned") is None
        wait_for(lambda: any("script-src" in text for text in reports), 10, what="the report")
