"""The site as a person uses it: a real headless Chromium against the real gunicorn + Socket.IO server,
real Celery workers and Redis (contract §2, §4, §6)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect
from sqlalchemy import select

from questboard.testing import wait_for
from shared.db import get_sessionmaker
from shared.models import OutboxMail

pytestmark = pytest.mark.browser

JOB_PATH = re.compile(r"/jobs/([^/?#]+)$")
CHARACTER_PATH = re.compile(r"/characters/([^/?#]+)$")
SERVER_VALUENOW = re.compile(r'role="progressbar"[^>]*?aria-valuenow="(\d+)"')
LIVE_TIMEOUT_MS = 30_000

# Installed on the context before the job page exists, so it runs before the page's own scripts.
# It logs the progress bar's value as the server rendered it ("initial", at DOMContentLoaded, before any
# Socket.IO message can have been handled) and every later change of aria-valuenow ("update"). Each
# record's new value is the next record's old value (or the current one for the last record), so no
# value is lost when several changes land in one observer callback. The log lives in the page
# (``window.__qbProgressLog``) and, when the test exposed ``__qbRecordProgress``, also goes to Python, so
# it survives the page navigating away by itself.
PROGRESS_RECORDER_JS = """
(() => {
  if (!/^\\/jobs\\/[^/]+$/.test(location.pathname)) return;
  const log = (window.__qbProgressLog = []);
  const record = (kind, value) => {
    log.push([kind, Number(value)]);
    if (typeof window.__qbRecordProgress === "function") {
      window.__qbRecordProgress(location.pathname, kind, Number(value)).catch(() => {});
    }
  };
  const observer = new MutationObserver((records) => {
    const bars = records.filter(
      (r) => r.type === "attributes" && r.target.getAttribute("role") === "progressbar");
    bars.forEach((r, i) => {
      const next = bars.slice(i + 1).find((later) => later.target === r.target);
      record("update", next ? next.oldValue : r.target.getAttribute("aria-valuenow"));
    });
  });
  observer.observe(document, {
    subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ["aria-valuenow"],
  });
  document.addEventListener("DOMContentLoaded", () => {
    const bar = document.querySelector('[role="progressbar"]');
    if (bar) record("initial", bar.getAttribute("aria-valuenow"));
  });
})();
"""


def log_in(page: Page, accounts, person, live_server: str) -> None:
    """Open a fresh magic link; it lands on the site logged in as ``person``."""
    response = page.goto(accounts.create_magic_link(person.user, live_server))
    assert response is not None and response.ok, response and response.status
    expect(page.locator("header.topbar .who")).to_have_text(person.user.email)


def submit_probe(live_server: str, person, steps: int = 10, step_ms: int = 400) -> str:
    response = requests.post(
        live_server + "/api/jobs",
        json={"type": "diagnostics.probe", "params": {"steps": steps, "step_ms": step_ms}},
        headers=person.headers,
        timeout=10,
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def api_job(live_server: str, person, job_id: str) -> dict:
    response = requests.get(f"{live_server}/api/jobs/{job_id}", headers=person.headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def bar_value(page: Page) -> int:
    return int(page.get_attribute('[role="progressbar"]', "aria-valuenow"))


def test_magic_link_character_form_live_progress_character_page(
    page: Page, live_server, accounts, alice, start_worker, shots_dir: Path
):
    seen: list[tuple[str, str, int]] = []
    page.context.expose_binding(
        "__qbRecordProgress", lambda _source, path, kind, value: seen.append((path, kind, int(value)))
    )
    page.context.add_init_script(PROGRESS_RECORDER_JS)

    log_in(page, accounts, alice, live_server)

    page.goto(live_server + "/characters/new")
    page.fill("#name", "Brenna Ashvale")
    page.select_option("#race", "Dwarf")
    page.select_option("#char_class", "Cleric")
    page.fill("#level", "7")
    page.select_option("#alignment", "Lawful Good")
    page.get_by_role("button", name="Generate character").click()

    page.wait_for_url(JOB_PATH)
    job_id = JOB_PATH.search(page.url).group(1)
    job_path = f"/jobs/{job_id}"
    expect(page.locator("#job [data-role=status]")).to_have_text("queued")

    # The character job takes milliseconds, far less than a page load plus a Socket.IO handshake. So the
    # worker starts only once the page is subscribed (the server's replay of the current state has
    # reached the bar): from then on every step must arrive live, in order.
    page.wait_for_function(
        "() => (window.__qbProgressLog || []).some(([kind]) => kind === 'update')", timeout=LIVE_TIMEOUT_MS
    )
    start_worker()

    page.wait_for_url(CHARACTER_PATH, timeout=LIVE_TIMEOUT_MS)
    job = api_job(live_server, alice, job_id)
    assert job["status"] == "succeeded", job
    assert page.url == live_server + job["result"]["url"]
    assert CHARACTER_PATH.search(page.url).group(1) == str(job["result"]["id"])

    expect(page.locator("#character h1")).to_have_text("Brenna Ashvale")
    expect(page.locator("#character .subtitle")).to_contain_text("Level 7 Dwarf Cleric")
    # In the D&D order, not the class's priority order the scores were rolled in (a Cleric: WIS first).
    expect(page.locator("#character .abilities .ability")).to_have_text(
        ["STR", "DEX", "CON", "INT", "WIS", "CHA"]
    )
    paragraphs = page.locator("#character .background p")
    assert paragraphs.count() >= 3
    texts = [text.strip() for text in paragraphs.all_inner_texts()]
    assert all(texts), texts
    assert "Brenna Ashvale" in texts[0]
    page.screenshot(path=str(shots_dir / "character-page.png"), full_page=True)

    # What the browser saw on the job page's progress bar, in order.
    values = [value for path, _kind, value in seen if path == job_path]
    assert values, seen
    assert values == sorted(values), f"progress went backwards: {values}"
    assert values[-1] == 100, values
    assert {25, 75, 100} <= set(values), f"the browser did not see every step: {values}"

    # The persisted events agree.
    events = requests.get(f"{live_server}/api/jobs/{job_id}/events", headers=alice.headers, timeout=10)
    assert events.status_code == 200, events.text
    progress = [event["progress"] for event in events.json()]
    assert progress == sorted(progress), progress
    assert [p for p in progress if p in (25, 75, 100)][:3] == [25, 75, 100], progress


def test_an_export_job_offers_a_download_when_it_finishes(
    page: Page, live_server, accounts, alice, start_worker
):
    response = requests.post(
        live_server + "/api/jobs",
        json={"type": "report.export", "params": {"kind": "jobs", "format": "csv"}},
        headers=alice.headers,
        timeout=10,
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    log_in(page, accounts, alice, live_server)
    page.goto(f"{live_server}/jobs/{job_id}")
    expect(page.locator("#job [data-role=status]")).to_have_text("queued")
    start_worker()  # the page is open: it sees the job finish live
    expect(page.locator("#job [data-role=status]")).to_have_text("succeeded", timeout=LIVE_TIMEOUT_MS)
    button = page.locator("#job [data-role=result]")
    expect(button).to_be_visible()
    expect(button).to_have_text("Download")
    expect(button).to_have_attribute("href", f"/jobs/{job_id}/download")
    assert page.url == f"{live_server}/jobs/{job_id}"  # no redirect into a file download
    page.reload()  # rendered by the server: one Download button, no "Open result"
    expect(page.get_by_text("Open result")).to_have_count(0)
    expect(page.locator("#job [data-role=download]")).to_contain_text("Download CSV")


def test_refresh_mid_job_shows_current_progress_at_once(
    page: Page, live_server, accounts, alice, worker, shots_dir: Path
):
    job_id = submit_probe(live_server, alice, steps=10, step_ms=400)
    page.context.add_init_script(PROGRESS_RECORDER_JS)
    log_in(page, accounts, alice, live_server)

    page.goto(f"{live_server}/jobs/{job_id}")
    page.wait_for_function(
        "() => Number(document.querySelector('[role=progressbar]').getAttribute('aria-valuenow')) >= 30",
        timeout=LIVE_TIMEOUT_MS,
    )
    before = bar_value(page)
    page.screenshot(path=str(shots_dir / "job-page-mid-progress.png"), full_page=True)

    response = page.reload()
    assert response is not None and response.status == 200
    # The HTML as the server sent it: no Socket.IO update can be in it.
    rendered = SERVER_VALUENOW.search(response.text())
    assert rendered is not None, response.text()
    assert int(rendered.group(1)) >= before, (rendered.group(1), before)
    # And the bar as the browser first had it, at DOMContentLoaded.
    initial = page.evaluate("window.__qbProgressLog.filter(([kind]) => kind === 'initial').map(([, v]) => v)")
    assert initial and initial[0] >= before, (initial, before)

    status = page.locator("#job [data-role=status]")
    expect(status).to_have_text("succeeded", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator('[role="progressbar"]')).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#job [data-role=cancel]")).to_be_hidden()
    assert api_job(live_server, alice, job_id)["status"] == "succeeded"


def test_cancel_a_queued_job_from_its_page(page: Page, live_server, accounts, alice):
    # No worker in this test: the job stays queued until it is canceled.
    job_id = submit_probe(live_server, alice, steps=3, step_ms=100)
    log_in(page, accounts, alice, live_server)

    page.goto(f"{live_server}/jobs/{job_id}")
    status = page.locator("#job [data-role=status]")
    expect(status).to_have_text("queued")
    page.get_by_role("button", name="Cancel job").click()

    expect(status).to_have_text("canceled")
    expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()
    assert page.url == f"{live_server}/jobs/{job_id}"
    job = api_job(live_server, alice, job_id)
    assert job["status"] == "canceled", job
    assert job["started_at"] is None, job


def test_another_users_job_page_is_not_found(page: Page, live_server, accounts, alice, bob):
    job_id = submit_probe(live_server, alice, steps=1, step_ms=0)
    log_in(page, accounts, bob, live_server)

    response = page.goto(f"{live_server}/jobs/{job_id}")
    assert response is not None and response.status == 404
    # Today this is Werkzeug's plain "Not Found" page (web/templates/404.html is never used).
    expect(page.locator("h1")).to_have_text(re.compile(r"not found", re.IGNORECASE))
    expect(page.locator("#job")).to_have_count(0)
    assert job_id[:8] not in page.content()


def test_login_form_and_spent_magic_link(page: Page, live_server, alice, settings, worker):
    from shared.models import Job
    from shared.signin_links import render

    def outbox_links(email: str) -> list[str]:
        """The links of the person's mail as the mail delivered to them reads (the worker mails them)."""
        with get_sessionmaker(settings.resolved_database_url)() as db:
            bodies = db.scalars(select(OutboxMail.body).where(OutboxMail.to_addr == email)).all()
        bodies = [render(body, settings.resolved_secret_key()) for body in bodies]
        return [m.group(0) for body in bodies for m in re.finditer(r"http://\S+/login/\S+", body)]

    def login_jobs_done(count: int) -> bool:
        with get_sessionmaker(settings.resolved_database_url)() as db:
            statuses = db.scalars(select(Job.status).where(Job.type == "login.mail")).all()
        return statuses.count("succeeded") >= count

    page.goto(live_server + "/login")
    page.fill("#email", alice.user.email)
    page.get_by_role("button", name="Send me a sign-in link").click()
    expect(page.locator("h1")).to_have_text("Check your mail")
    expect(page.locator("main strong")).to_have_text(alice.user.email)
    expect(page.locator("header.topbar .who")).to_have_count(0)
    links = wait_for(lambda: outbox_links(alice.user.email), 30, what="alice's sign-in mail")
    assert len(links) == 1, links

    page.goto(live_server + "/login")
    page.fill("#email", "nobody@example.com")
    page.get_by_role("button", name="Send me a sign-in link").click()
    expect(page.locator("h1")).to_have_text("Check your mail")
    expect(page.locator("main strong")).to_have_text("nobody@example.com")
    wait_for(lambda: login_jobs_done(2), 30, what="both login.mail jobs done")
    assert outbox_links("nobody@example.com") == []

    # The mailed link works once...
    response = page.goto(links[0])
    assert response is not None and response.ok
    expect(page.locator("header.topbar .who")).to_have_text(alice.user.email)
    # ...and never again.
    response = page.goto(links[0])
    assert response is not None and response.status == 400
    expect(page.locator("h1")).to_have_text("This link can't be used")


def test_live_progress_over_websocket_only_from_a_multi_process_web(
    page: Page, live_server, accounts, alice, worker
):
    """Pages connect with the websocket transport, which needs no relay or sticky proxy: the browser
    fixtures' server runs as many processes as `questboard web` by default (one per core)."""
    base = live_server
    sockets: list[str] = []
    socketio_requests: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.on("request", lambda r: "/socket.io/" in r.url and socketio_requests.append(r.url))
    page.context.add_init_script(PROGRESS_RECORDER_JS)
    job_id = submit_probe(base, alice, steps=10, step_ms=300)
    log_in(page, accounts, alice, base)
    page.goto(f"{base}/jobs/{job_id}")
    expect(page.locator("#job [data-role=status]")).to_have_text("succeeded", timeout=LIVE_TIMEOUT_MS)
    updates = page.evaluate("window.__qbProgressLog.filter(([kind]) => kind === 'update').length")
    assert updates > 0  # the bar moved live, over Socket.IO
    assert sockets and all("/socket.io/" in url and "transport=websocket" in url for url in sockets)
    assert not [url for url in socketio_requests if "transport=polling" in url]
