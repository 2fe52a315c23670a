"""The workflow page in Debian's Chromium against the real server, a worker and Redis: the steps by
dependency level, their states changing live over Socket.IO until the workflow succeeds, the job page's
link to its workflow, and the page at 390 px without horizontal scrolling or an axe-core violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import watch_csp
from tests.browser.test_job_pages import PHONE, WIDEST_JS, _violations, api, log_in
from tests.browser.test_job_pages import axe_js as axe_js  # the session fixture, shared

pytestmark = pytest.mark.browser
STEP = {"type": "diagnostics.probe", "params": {"steps": 4, "step_ms": 250}}


def step(locator, key: str):
    return locator.locator(f'.wf-step[data-key="{key}"]')


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_workflow_page_follows_its_steps_live(
    browser,
    accounts,
    alice,
    live_server,
    start_worker,
    axe_js,
    scheme,  # noqa: F811
):
    steps = [
        {"key": "fetch", **STEP},
        {"key": "left", **STEP, "after": ["fetch"]},
        {"key": "right", **STEP, "after": ["fetch"]},
        {"key": "report", **STEP, "after": ["left", "right"]},
    ]
    resp = api(live_server, alice, "POST", "/api/workflows", json={"name": "Nightly", "steps": steps})
    assert resp.status_code == 202
    workflow = resp.json()
    context = browser.new_context(viewport=PHONE, color_scheme=scheme)
    csp = watch_csp(context)
    try:
        page: Page = context.new_page()
        log_in(page, accounts, alice.user, live_server)
        page.goto(f"{live_server}/workflows/{workflow['id']}")
        graph = page.locator("[data-role=graph]")
        levels = graph.locator(".wf-level")
        expect(levels).to_have_count(3)  # fetch; left and right; report
        expect(levels.nth(1).locator(".wf-step")).to_have_count(2)
        expect(step(graph, "report").locator(".wf-after")).to_have_text("after left, right")
        expect(step(graph, "report").locator("[data-role=status]")).to_have_text("blocked")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], page.evaluate(
            WIDEST_JS, PHONE["width"]
        )
        assert _violations(page, axe_js) == []

        start_worker(queues="default", concurrency=1)  # only now does anything run: what changes is live
        expect(step(graph, "report").locator("[data-role=status]")).to_have_text("succeeded", timeout=60_000)
        expect(page.locator("[data-role=workflow-status]")).to_have_text("succeeded", timeout=15_000)
        assert _violations(page, axe_js) == []

        page.click('.wf-step[data-key="left"] a')
        expect(page.locator("#job")).to_have_attribute("data-job-id", workflow["steps"][1]["job_id"])
        page.click("[data-role=workflow]")
        expect(page).to_have_url(f"{live_server}/workflows/{workflow['id']}")
    finally:
        context.close()
    assert csp == [], f"the page broke its Content-Security-Policy: {csp}"


def test_another_users_workflow_page_is_404(page: Page, accounts, alice, bob, live_server):
    workflow = api(
        live_server, alice, "POST", "/api/workflows", json={"steps": [{"key": "a", **STEP}]}
    ).json()
    log_in(page, accounts, bob.user, live_server)
    response = page.goto(f"{live_server}/workflows/{workflow['id']}")
    assert response is not None and response.status == 404
