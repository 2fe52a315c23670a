"""Why is it waiting? in Debian's Chromium against the real server and a real worker: the page of a job in
a paused queue says so, and the line goes away live once the queue is resumed and the job runs."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from shared.queues import QueueControl
from tests.browser.test_job_pages import api, log_in

pytestmark = pytest.mark.browser


def test_the_waiting_reason_shows_and_goes_once_the_job_runs(
    page: Page, accounts, alice, settings, live_server, start_worker
):
    queues = QueueControl(settings.resolved_database_url)
    queues.set_paused("low", True, "test")
    start_worker(queues="low")  # started paused: it takes nothing from low until resumed
    resp = api(live_server, alice, "POST", "/api/jobs", json={"type": "diagnostics.probe", "queue": "low"})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]

    log_in(page, accounts, alice.user, live_server)
    page.goto(f"{live_server}/jobs/{job_id}")
    waiting = page.locator("[data-role=waiting]")
    expect(waiting).to_be_visible()
    expect(waiting).to_contain_text("Why is it waiting? Queue low is paused")

    queues.set_paused("low", False, "test")
    expect(page.locator("#job")).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(waiting).to_be_hidden()
