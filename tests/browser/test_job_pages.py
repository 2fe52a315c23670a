"""Job pages in Debian's Chromium against the real server, workers and Redis (contract §6): a failed job's
attempts and tracebacks, the operators' browser with a confirmed bulk cancel, /characters, and every page
at 390 px without horizontal scrolling and without an axe-core violation, in light and dark scheme."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect
from sqlalchemy import select

from questboard.testing import wait_for
from shared.db import get_sessionmaker
from shared.models import AuditEntry

pytestmark = pytest.mark.browser

NODE_DIR = Path(__file__).parent / "node"
PROBE = "diagnostics.probe"


@pytest.fixture(scope="session")
def axe_js() -> str:
    """axe-core from npm (installed from the lock file on first use, like the socket.io-client probe)."""
    script = NODE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if not script.is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is needed for the axe-core checks (Debian: apt-get install npm)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300)
    return script.read_text()


def log_in(page: Page, accounts, user, live_server: str) -> None:
    response = page.goto(accounts.create_magic_link(user, live_server))
    assert response is not None and response.ok
    expect(page.locator("header.topbar .who")).to_have_text(user.email)


def api(live_server: str, person, method: str, path: str, **kw):
    return requests.request(method, f"{live_server}{path}", headers=person.headers, timeout=10, **kw)


def finished(live_server: str, person, job_id: str) -> dict:
    def done():
        job = api(live_server, person, "GET", f"/api/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "canceled") else None

    return wait_for(done, 60, 0.2, what=f"job {job_id} to finish")


def test_failed_job_page_shows_params_and_every_attempts_traceback(
    page: Page, accounts, alice, live_server, start_worker, shots_dir
):
    start_worker(queues="default")
    body = {"type": PROBE, "params": {"steps": 2, "fail_first_attempts": 2}}
    job_id = api(live_server, alice, "POST", "/api/jobs", json=body).json()["id"]
    job = finished(live_server, alice, job_id)
    attempts = api(live_server, alice, "GET", f"/api/jobs/{job_id}/attempts").json()
    assert len(attempts) == job["attempts"] >= 2

    log_in(page, accounts, alice.user, live_server)
    page.goto(f"{live_server}/jobs/{job_id}")
    expect(page.locator("[data-role=params]")).to_contain_text('"fail_first_attempts": 2')
    items = page.locator("li.attempt")
    expect(items).to_have_count(len(attempts))
    for a in attempts:
        item = page.locator(f'li.attempt[data-attempt="{a["number"]}"]')
        expect(item.locator("[data-role=status]")).to_have_text(a["status"])
        if a["error"]:
            item.locator("summary", has_text="Traceback").click()
            expect(item.locator("pre.traceback")).to_be_visible()
            expect(item.locator("pre.traceback")).to_contain_text("Traceback (most recent call last)")
    expect(page.locator("[data-role=timeline] li").first).to_be_visible()
    page.screenshot(path=str(shots_dir / "job-detail.png"), full_page=True)


def test_operator_filters_the_browser_and_cancels_all_matching_scheduled_jobs(
    page: Page, accounts, alice, bob, admin, live_server, settings, shots_dir
):
    later = {"type": PROBE, "delay_seconds": 3600}
    mine = [api(live_server, alice, "POST", "/api/jobs", json=later).json()["id"] for _ in range(4)]
    theirs = api(live_server, bob, "POST", "/api/jobs", json=later).json()["id"]
    queued = api(live_server, alice, "POST", "/api/jobs", json={"type": PROBE}).json()["id"]

    log_in(page, accounts, admin.user, live_server)
    page.goto(f"{live_server}/admin/jobs")
    filters = page.locator("#filters")
    filters.get_by_label("scheduled").check()
    filters.get_by_label("Type").fill(PROBE)
    filters.get_by_label("Owner email").fill("alice@example.com")
    filters.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(
        re.compile(r"status=scheduled.*type=diagnostics\.probe.*user=alice%40example\.com")
    )
    expect(page.locator("#browser li.job-item")).to_have_count(4)
    expect(page.locator("[data-role=total]")).to_have_text("4")
    page.screenshot(path=str(shots_dir / "admin-jobs.png"), full_page=True)

    page.get_by_label("All 4 matching").check()
    page.get_by_role("button", name="Cancel…").click()
    expect(page.get_by_role("heading", name="Cancel 4 jobs?")).to_be_visible()
    page.get_by_role("button", name="Yes, cancel 4 jobs").click()
    expect(page.get_by_role("alert").filter(has_text="Canceled 4 jobs.")).to_be_visible()

    statuses = {j: api(live_server, admin, "GET", f"/api/jobs/{j}").json()["status"] for j in mine}
    assert set(statuses.values()) == {"canceled"}
    assert api(live_server, admin, "GET", f"/api/jobs/{theirs}").json()["status"] == "scheduled"
    assert api(live_server, admin, "GET", f"/api/jobs/{queued}").json()["status"] == "queued"
    with get_sessionmaker(settings.resolved_database_url)() as db:
        entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "jobs.cancel")).all()
    assert len(entries) == 1 and entries[0].details["count"] == 4 and entries[0].actor == admin.user.email


def test_characters_lists_a_new_character(page: Page, accounts, alice, live_server, start_worker, shots_dir):
    start_worker(queues="critical,high,default")
    log_in(page, accounts, alice.user, live_server)
    page.goto(f"{live_server}/characters/new")
    page.get_by_label("Name").fill("Thessaly Vane")
    page.get_by_label("Race").select_option("Tiefling")
    page.get_by_label("Class").select_option("Warlock")
    page.get_by_label("Level").fill("4")
    page.get_by_role("button", name="Generate character").click()
    page.wait_for_url("**/characters/*", timeout=60_000)
    page.goto(f"{live_server}/characters")
    card = page.locator("#characters li", has_text="Thessaly Vane")
    expect(card).to_contain_text("Level 4 Tiefling Warlock")
    page.screenshot(path=str(shots_dir / "characters.png"), full_page=True)


PHONE = {"width": 390, "height": 844}
ANONYMOUS_PAGES = ["/login", "/login/not-a-link-we-issued", "/no/such/page"]
USER_PAGES = [
    "/",
    "/characters",
    "/characters/new",
    "/characters/{character}",
    "/jobs/{failed}",
    "/characters/import",
    "/exports",
    "/search?q=Mira",
    "/admin",  # 403 for a user: a page of the site
    "/no/such/page",
]
OPERATOR_PAGES = [
    "/admin",
    "/admin/jobs",
    "/admin/jobs?status=failed",
    "/jobs/{failed}",
    "/jobs/{running}",
    "/",
]


# The outermost elements that reach past the screen's right edge (to say what to fix).
WIDEST_JS = """(limit) => {
  const clipped = (e) => {
    for (let a = e.parentElement; a && a !== document.documentElement; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') return true;
    }
    return false;
  };
  const wide = [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > limit + 0.5 && !clipped(e));
  return [document.documentElement.scrollWidth].concat(wide.slice(0, 6).map(
    (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + e.className + ' '
      + Math.round(e.getBoundingClientRect().right)));
}"""


def _violations(page: Page, axe_js: str) -> list[str]:
    page.evaluate(axe_js)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:5]}" for v in result["violations"]
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_fits_a_phone_and_has_no_axe_violation(
    browser, accounts, alice, admin, live_server, settings, start_worker, axe_js, scheme
):
    from tests.integration.test_admin_support import run_and_fail

    start_worker(queues="critical,high,default")
    character = api(
        live_server,
        alice,
        "POST",
        "/api/jobs",
        json={
            "type": "character.generate",
            "params": {"name": "Mira", "race": "Elf", "char_class": "Bard", "level": 2},
        },
    ).json()["id"]
    made = finished(live_server, alice, character)["result"]
    failing = api(live_server, alice, "POST", "/api/jobs", json={"type": PROBE, "delay_seconds": 3600}).json()
    api(live_server, admin, "POST", "/api/admin/jobs/cancel", json={"ids": [failing["id"]]})
    failed = api(live_server, alice, "POST", "/api/jobs", json={"type": PROBE, "queue": "low"}).json()["id"]
    run_and_fail(settings, failed, "token=abc123 broke it")
    # A running job, so its badge (the contrast finding) is on the pages checked.
    slow = {"type": PROBE, "params": {"steps": 600, "step_ms": 200}}
    running = api(live_server, alice, "POST", "/api/jobs", json=slow).json()["id"]
    wait_for(
        lambda: api(live_server, alice, "GET", f"/api/jobs/{running}").json()["status"] == "running",
        30,
        what="the slow job to run",
    )
    values = {"character": made["url"].rstrip("/").rsplit("/", 1)[-1], "failed": failed, "running": running}

    problems: dict[str, list[str]] = {}
    for who, paths in ((None, ANONYMOUS_PAGES), (alice, USER_PAGES), (admin, OPERATOR_PAGES)):
        context = browser.new_context(viewport=PHONE, color_scheme=scheme, bypass_csp=True)
        try:
            page = context.new_page()
            if who is not None:
                log_in(page, accounts, who.user, live_server)
            for path in paths:
                url = live_server + path.format(**values)
                page.goto(url)
                page.wait_for_load_state("networkidle")
                width = page.evaluate("document.documentElement.scrollWidth")
                found = _violations(page, axe_js)
                if width > PHONE["width"]:
                    wide = page.evaluate(WIDEST_JS, PHONE["width"])
                    found.append(f"scrollWidth {width} > {PHONE['width']}: {wide}")
                if page.locator("a.skip-link").count() != 1:
                    found.append("no skip link")
                if found:
                    problems[f"{who.user.email if who else 'anonymous'} {path}"] = found
        finally:
            context.close()
    api(live_server, alice, "POST", f"/api/jobs/{running}/cancel")
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())
