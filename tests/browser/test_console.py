"""The operator console as the person on call uses it: headless Chromium against the real gunicorn +
Socket.IO server, real Celery workers and Redis (contract §3 admin API, §6 /admin)."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Page, expect

from questboard.testing import wait_for
from shared.admin import grant_viewer

pytestmark = pytest.mark.browser

LIVE_MS = 30_000


def log_in(page: Page, accounts, user, live_server: str) -> None:
    response = page.goto(accounts.create_magic_link(user, live_server))
    assert response is not None and response.ok, response and response.status
    expect(page.locator("header.topbar .who")).to_have_text(user.email)


def submit(live_server: str, person, queue: str | None = None, **params) -> str:
    body: dict = {"type": "diagnostics.probe", "params": params}
    if queue:
        body["queue"] = queue
    response = requests.post(f"{live_server}/api/jobs", json=body, headers=person.headers, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def status_of(live_server: str, person, job_id: str) -> dict:
    return requests.get(f"{live_server}/api/jobs/{job_id}", headers=person.headers, timeout=10).json()


def test_pausing_a_queue_holds_its_jobs_until_it_is_resumed(
    page: Page, accounts, admin, alice, live_server, start_worker, shots_dir
):
    start_worker()
    log_in(page, accounts, admin.user, live_server)
    page.goto(f"{live_server}/admin")
    default = page.locator('tr[data-queue="default"]')
    worker_queues = page.locator("tr[data-worker] [data-role=queues]")
    expect(worker_queues).to_contain_text("default")

    default.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("alert").filter(has_text="Queue default paused.")).to_be_visible()
    expect(default).to_have_attribute("data-paused", "true")
    expect(default.locator("[data-role=state]")).to_have_text("paused")
    # The worker follows: its heartbeat stops listing the queue (the console refreshes by itself).
    expect(worker_queues).not_to_contain_text("default", timeout=LIVE_MS)

    held = submit(live_server, alice, queue="default")
    control = submit(live_server, admin, queue="high")  # above the probe's own queue: admins only
    wait_for(
        lambda: status_of(live_server, admin, control)["status"] == "succeeded", 30, what="the control job"
    )
    queued = page.locator(f'[data-section="queued"] tr[data-job-id="{held}"]')
    expect(queued).to_be_visible(timeout=LIVE_MS)  # shown live, no reload
    expect(default.locator("[data-role=depth]")).to_have_text("1")
    assert status_of(live_server, alice, held)["status"] == "queued"  # the worker ran the other queue's job
    page.screenshot(path=str(shots_dir / "console-paused.png"), full_page=True)

    default.get_by_role("button", name="Resume").click()
    expect(default).to_have_attribute("data-paused", "false")
    wait_for(
        lambda: status_of(live_server, alice, held)["status"] == "succeeded", 30, what="the held job to run"
    )
    expect(queued).to_have_count(0, timeout=LIVE_MS)
    expect(default.locator("[data-role=depth]")).to_have_text("0")
    audit = page.locator("#audit tbody tr")
    expect(audit.nth(0)).to_contain_text("queue.resume")
    expect(audit.nth(1)).to_contain_text("queue.pause")
    expect(audit.nth(1)).to_contain_text(admin.user.email)


def test_a_failed_job_is_retried_from_the_console_and_succeeds(
    page: Page, accounts, admin, alice, live_server, start_worker, shots_dir
):
    start_worker()
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    # No periodic refresh: whatever changes on the page now arrives through Socket.IO.
    page.add_init_script("window.setInterval = function () { return 0; };")
    log_in(page, accounts, admin.user, live_server)
    page.goto(f"{live_server}/admin")
    expect(page.locator("#chart-succeeded canvas")).to_have_count(1)  # uPlot drew the charts
    # Fails all 3 attempts it has (probe: max_attempts 3); the operator's retry grants fresh ones.
    job_id = submit(live_server, alice, fail_first_attempts=3)

    row = page.locator(f'#failed tr[data-job-id="{job_id}"]')
    expect(row).to_be_visible(timeout=LIVE_MS)  # arrives live, pushed by Socket.IO
    expect(row.locator("[data-role=error]")).to_contain_text("TransientError: probe failure on attempt 3")
    row.locator("summary", has_text="Traceback").click()
    expect(row.locator("pre.tb")).to_contain_text("TransientError")
    expect(page.locator('.tile[data-status="failed"] .n')).to_have_text("1")
    page.screenshot(path=str(shots_dir / "console.png"), full_page=True)

    row.get_by_role("button", name="Retry").click()
    expect(
        page.get_by_role("alert").filter(has_text=re.compile(r"Job \w{8} \(diagnostics.probe\) retried"))
    ).to_be_visible()
    wait_for(
        lambda: status_of(live_server, alice, job_id)["status"] == "succeeded", 30, what="the retried job"
    )
    expect(row).to_have_count(0, timeout=LIVE_MS)
    assert status_of(live_server, alice, job_id)["attempts"] == 4
    expect(page.locator(f'#audit tr[data-action="job.retry"][data-target="{job_id}"]')).to_contain_text(
        admin.user.email
    )
    assert script_errors == []


def test_users_get_403_and_viewers_look_without_acting(page: Page, accounts, alice, live_server, settings):
    log_in(page, accounts, alice.user, live_server)
    for path in ("/admin", "/admin/panel"):
        response = page.goto(f"{live_server}{path}")
        assert response is not None and response.status == 403, path
    for path in ("/api/admin/stats", "/api/admin/queues", "/metrics"):
        assert requests.get(f"{live_server}{path}", headers=alice.headers, timeout=10).status_code == 403
    assert (
        requests.post(f"{live_server}/api/admin/queues/default/pause", headers=alice.headers).status_code
        == 403
    )

    page.context.clear_cookies()
    viewer = grant_viewer(settings.resolved_database_url, accounts.ensure_user("viewer@example.com").id)
    log_in(page, accounts, viewer, live_server)
    page.goto(f"{live_server}/admin")
    expect(page.locator(".pill")).to_have_text("read-only")
    expect(page.locator('tr[data-queue="default"]')).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Pause|Resume|Retry|Discard|Run now"))).to_have_count(0)
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    for path in (
        "/admin/queues/default/pause",
        "/admin/failed/all/retry",
        "/admin/recurring/cleanup-events/run",
    ):
        response = page.request.post(f"{live_server}{path}", form={"csrf_token": token, "type": "x"})
        assert response.status == 403, path
