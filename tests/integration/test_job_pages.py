"""Job pages (contract §6): the job detail for owners and operators, the user's list with follow-ups under
their parent, /characters, the operators' browser with confirmed bulk actions, and error pages of the
site. Real Redis, real database, real workers where jobs must run."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from questboard.testing import wait_for
from shared.db import get_sessionmaker
from shared.jobviews import pretty_json
from shared.models import AuditEntry
from tests.integration.helpers_app import csrf_token, log_in
from tests.integration.test_admin_support import PROBE, Viewer, run_and_fail, submit
from tests.integration.test_batch_import import GOOD_CSV, upload
from tests.integration.workflows.support import finished_workflow


@pytest.fixture
def viewer(accounts, settings) -> Viewer:
    return Viewer(accounts, settings)


def _page(client, path: str) -> tuple[int, str]:
    resp = client.get(path)
    return resp.status_code, html.unescape(resp.get_data(as_text=True))


def _scheduled(client, person) -> str:
    resp = client.post("/api/jobs", json={"type": PROBE, "delay_seconds": 3600}, headers=person.headers)
    assert resp.status_code == 202
    return resp.get_json()["id"]


def test_failed_job_page_shows_params_attempts_and_tracebacks(
    client, accounts, alice, bob, viewer, admin, settings
):
    job_id = submit(client, alice, steps=3)
    run_and_fail(settings, job_id, "the bridge is out")

    log_in(client, accounts, alice)
    status, page = _page(client, f"/jobs/{job_id}")
    assert status == 200
    assert '"steps": 3' in page  # params, pretty
    assert re.search(r'<li class="attempt" data-attempt="1">', page)
    assert "PermanentError: the bridge is out" in page
    assert "<details><summary>Traceback</summary>" in page and "Traceback (most recent call last)" in page
    assert "test-worker@host" in page
    assert re.search(r'<time datetime="[^"]+Z" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">', page)
    assert "Run again" in page and 'data-role="discard"' not in page  # owners do not operate
    assert 'data-role="timeline"' in page and "Queued" in page

    log_in(client, accounts, bob)
    assert _page(client, f"/jobs/{job_id}")[0] == 404
    log_in(client, accounts, viewer)
    status, page = _page(client, f"/jobs/{job_id}")
    assert status == 200 and "the bridge is out" in page and 'data-role="retry"' not in page
    log_in(client, accounts, admin)
    status, page = _page(client, f"/jobs/{job_id}")
    assert 'data-role="retry"' in page and 'data-confirm="Discard this failed job?' in page
    assert "alice@example.com" in page  # operators see the owner


def test_params_are_redacted():
    shown = pretty_json({"api_key": "sk-very-secret", "url": "https://u:hunter2@example.com/x", "n": 1})
    assert "sk-very-secret" not in shown and "hunter2" not in shown and '"n": 1' in shown


def test_run_again_submits_the_same_params(client, accounts, alice, settings):
    job_id = submit(client, alice, steps=4, step_ms=5)
    log_in(client, accounts, alice)
    resp = client.post(f"/jobs/{job_id}/rerun", data={"csrf_token": csrf_token(client, f"/jobs/{job_id}")})
    assert resp.status_code == 302
    new_id = resp.headers["Location"].rsplit("/", 1)[-1]
    assert new_id != job_id
    new = client.get(f"/api/jobs/{new_id}", headers=alice.headers).get_json()
    old = client.get(f"/api/jobs/{job_id}", headers=alice.headers).get_json()
    assert new["type"] == PROBE and new["params"] == old["params"]


def test_an_imports_workflow_page_lists_its_rows_and_the_list_folds_follow_ups(
    client, accounts, alice, settings, worker
):
    log_in(client, accounts, alice)
    workflow_id = upload(client, GOOD_CSV.encode()).headers["Location"].rsplit("/", 1)[-1]
    done = finished_workflow(client, alice.headers, workflow_id)
    summary = done["steps"][-1]["job_id"]

    def mail_done() -> bool:
        page = _page(client, f"/jobs/{summary}")[1]
        return page.count('class="badge badge-succeeded"') >= 2  # the summary and its mail

    wait_for(mail_done, 30, what="the summary's mail")
    status, page = _page(client, f"/workflows/{workflow_id}")
    assert status == 200 and "Import of party.csv" in page
    assert re.findall(r'data-key="(row-\d|summary)"', page) == ["row-1", "row-2", "row-3", "summary"]

    status, listing = _page(client, "/")
    top = re.findall(r'<li class="job-item" data-job-id="(\w+)"', listing)
    assert summary in top and len(top) == 4  # three rows and the summary; the mail folds under it
    assert "1 follow-up job<" in listing and listing.count(f'data-parent-id="{summary}"') == 1
    assert "SMTP_URL" not in listing  # an operator's message, not the user's

    status, chars = _page(client, "/characters")
    assert status == 200 and all(n in chars for n in ("Mira Thorn", "Borin Ash", "Pip Quickfoot"))


def test_job_list_filters_by_status_and_type(client, accounts, alice, settings):
    failed = submit(client, alice)
    run_and_fail(settings, failed)
    queued = submit(client, alice)
    log_in(client, accounts, alice)

    def rows(query: str) -> list[str]:
        return re.findall(r'<li class="job-item" data-job-id="(\w+)"', _page(client, "/" + query)[1])

    assert rows("?status=failed") == [failed]
    assert rows("?status=queued&type=diagnostics.probe") == [queued]
    assert rows("?type=report.export") == []


def test_browser_filters_and_bulk_cancel_all_matching_after_confirming_the_count(
    client, accounts, alice, bob, admin, settings
):
    mine = [_scheduled(client, alice) for _ in range(3)]
    theirs = _scheduled(client, bob)
    submit(client, alice)  # queued: not matched by the filter
    log_in(client, accounts, admin)

    query = "?status=scheduled&type=diagnostics.probe&user=alice%40example.com"
    status, page = _page(client, "/admin/jobs" + query)
    assert status == 200
    assert sorted(re.findall(r'<li class="job-item" data-job-id="(\w+)"', page)) == sorted(mine)
    assert '<b data-role="total">3</b>' in page

    form = {
        "csrf_token": csrf_token(client, "/admin/jobs" + query),
        "status": "scheduled",
        "type": "diagnostics.probe",
        "user": "alice@example.com",
        "all_matching": "1",
    }
    confirm = client.post("/admin/jobs/cancel", data=form)
    text = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "Cancel 3 jobs?" in text
    statuses = [client.get(f"/api/jobs/{j}", headers=admin.headers).get_json()["status"] for j in mine]
    assert statuses == ["scheduled"] * 3  # nothing happens before confirming

    done = client.post("/admin/jobs/cancel/confirmed", data=form)
    assert done.status_code == 302 and "status=scheduled" in done.headers["Location"]
    statuses = [client.get(f"/api/jobs/{j}", headers=admin.headers).get_json()["status"] for j in mine]
    assert statuses == ["canceled"] * 3
    assert client.get(f"/api/jobs/{theirs}", headers=admin.headers).get_json()["status"] == "scheduled"
    with get_sessionmaker(settings.resolved_database_url)() as db:
        entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "jobs.cancel")).all()
    assert len(entries) == 1 and entries[0].details["count"] == 3
    assert "Canceled 3 jobs." in client.get(done.headers["Location"]).get_data(as_text=True)


def test_browser_is_for_operators_and_actions_for_admins(client, accounts, alice, viewer, admin):
    job_id = _scheduled(client, alice)
    assert client.get("/admin/jobs").status_code == 302  # to the sign-in page
    log_in(client, accounts, alice)
    status, page = _page(client, "/admin/jobs")
    assert status == 403 and "Not for you" in page and 'class="topbar"' in page and "Sign out" in page
    log_in(client, accounts, viewer)
    status, page = _page(client, "/admin/jobs")
    assert status == 200 and job_id in page and 'name="ids"' not in page
    token = csrf_token(client, "/")
    assert (
        client.post("/admin/jobs/cancel/confirmed", data={"csrf_token": token, "ids": job_id}).status_code
        == 403
    )
    log_in(client, accounts, admin)
    status, page = _page(client, "/admin/jobs?status=nope")
    assert status == 422 and "status.0" in page


def test_error_pages_are_pages_of_the_site(client, accounts, alice):
    status, page = _page(client, "/login/not-a-link-we-issued")
    assert status == 400 and 'class="skip-link"' in page and "Sign in" in page
    log_in(client, accounts, alice)
    for path, code in (("/no/such/page", 404), ("/admin", 403), ("/jobs/" + "0" * 32, 404)):
        status, page = _page(client, path)
        assert status == code, path
        assert 'class="skip-link"' in page and "Your jobs" in page and "alice@example.com" in page, path
