"""Who may see and do what: admins everything, viewers look only, other users nothing (API and console)."""

from __future__ import annotations

import pytest

from shared.queues import QueueControl
from tests.integration.test_admin_support import Viewer, csrf_token, log_in, run_and_fail, submit

READS = [
    "/api/admin/stats",
    "/api/admin/queues",
    "/api/admin/workers",
    "/api/admin/failed",
    "/api/admin/failed?type=diagnostics.probe",
    "/api/admin/recurring",
    "/metrics",
]
ACTIONS = [
    ("/api/admin/queues/default/pause", None),
    ("/api/admin/queues/default/resume", None),
    ("/api/admin/failed/{job}/retry", None),
    ("/api/admin/failed/{job}/discard", None),
    ("/api/admin/failed/retry", {"type": "diagnostics.probe"}),
    ("/api/admin/failed/discard", {"type": "diagnostics.probe"}),
    ("/api/admin/recurring/cleanup-events/pause", None),
    ("/api/admin/recurring/cleanup-events/run", None),
]
CONSOLE_PAGES = ["/admin", "/admin/panel", "/admin?type=diagnostics.probe"]
CONSOLE_ACTIONS = [
    ("/admin/queues/default/pause", {}),
    ("/admin/queues/default/resume", {}),
    ("/admin/failed/{job}/retry", {}),
    ("/admin/failed/{job}/discard", {}),
    ("/admin/failed/all/retry", {"type": "diagnostics.probe"}),
    ("/admin/failed/all/discard", {"type": "diagnostics.probe"}),
    ("/admin/recurring/cleanup-events/pause", {}),
    ("/admin/recurring/cleanup-events/run", {}),
]


@pytest.fixture
def viewer(accounts, settings) -> Viewer:
    return Viewer(accounts, settings)


@pytest.fixture
def failed_job(client, alice, settings) -> str:
    job_id = submit(client, alice)
    run_and_fail(settings, job_id)
    return job_id


def test_admin_api_wants_a_token_and_an_operator(client, alice, viewer, admin, failed_job):
    for path in READS:
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401, path
        forbidden = client.get(path, headers=alice.headers)
        assert forbidden.status_code == 403 and forbidden.get_json()["error"]["code"] == "forbidden", path
        assert client.get(path, headers=viewer.headers).status_code == 200, path
        assert client.get(path, headers=admin.headers).status_code == 200, path
    for template, body in ACTIONS:
        path = template.format(job=failed_job)
        assert client.post(path, json=body).status_code == 401, path
        assert client.post(path, json=body, headers=alice.headers).status_code == 403, path
        refused = client.post(path, json=body, headers=viewer.headers)
        assert refused.status_code == 403 and refused.is_json, path
    # Nothing any of them tried had an effect.
    assert (
        QueueControl(client.application.config["QUESTBOARD_SETTINGS"].resolved_database_url).paused() == set()
    )
    assert client.get(f"/api/jobs/{failed_job}", headers=admin.headers).get_json()["status"] == "failed"


def test_console_sends_strangers_to_login_and_refuses_non_operators(client, app, accounts, alice, failed_job):
    for path in CONSOLE_PAGES:
        response = client.get(path)
        assert response.status_code == 302 and "/login?next=/admin" in response.location, path
    log_in(client, accounts, alice.user)
    token = csrf_token(client)
    for path in CONSOLE_PAGES:
        assert client.get(path).status_code == 403, path
    for template, form in CONSOLE_ACTIONS:
        path = template.format(job=failed_job)
        assert client.post(path, data={**form, "csrf_token": token}).status_code == 403, path
    assert 'href="/admin"' not in client.get("/").get_data(as_text=True)  # no Admin link for users


def test_viewer_sees_the_console_read_only(client, accounts, viewer, failed_job, settings):
    log_in(client, accounts, viewer.user)
    page = client.get("/admin")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "read-only" in html and failed_job in html and 'href="/admin"' in html
    assert "/admin/queues/default/pause" not in html and ">Retry<" not in html  # no action buttons
    token = csrf_token(client, "/admin")
    for template, form in CONSOLE_ACTIONS:
        path = template.format(job=failed_job)
        assert client.post(path, data={**form, "csrf_token": token}).status_code == 403, path
    assert QueueControl(settings.resolved_database_url).paused() == set()


def test_admin_console_actions_need_csrf_and_are_audited(client, accounts, admin, failed_job, settings):
    log_in(client, accounts, admin.user)
    page = client.get("/admin").get_data(as_text=True)
    for section in ("Queues", "Workers", "Active jobs", "Failed jobs", "Recurring tasks", "Audit log"):
        assert f"<h2>{section}" in page, section
    assert "cleanup-events" in page  # the configured beat schedule, before beat ever ran

    assert client.post("/admin/queues/default/pause").status_code == 400  # no CSRF token
    assert QueueControl(settings.resolved_database_url).paused() == set()

    token = csrf_token(client, "/admin")
    done = client.post("/admin/queues/default/pause", data={"csrf_token": token})
    assert done.status_code == 302 and done.location.endswith("/admin")
    assert QueueControl(settings.resolved_database_url).paused() == {"default"}
    retried = client.post(
        f"/admin/failed/{failed_job}/retry", data={"csrf_token": token, "return_type": "diagnostics.probe"}
    )
    assert retried.status_code == 302 and retried.location.endswith("/admin?type=diagnostics.probe")
    refused = client.post(
        f"/admin/failed/{failed_job}/retry", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Only failed jobs in the dead-letter set can be retried" in refused.get_data(as_text=True)

    console = client.get("/admin").get_data(as_text=True)
    assert 'data-queue="default" data-paused="true"' in console
    assert f'data-action="job.retry" data-target="{failed_job}"' in console
    assert 'data-action="queue.pause" data-target="default"' in console and "ops@example.com" in console


def test_console_still_answers_when_redis_is_down(tmp_path, db_url, accounts, admin, failed_job):
    from questboard.testing import free_port
    from shared.settings import Settings
    from web import create_app

    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings(redis_url=dead, database_url=db_url, instance_dir=tmp_path / "i", secret_key="x")
    client = create_app(settings, TESTING=True).test_client()
    log_in(client, accounts, admin.user)

    page = client.get("/admin")

    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Redis does not answer" in html and "queues, workers and recurring tasks are unknown" in html
    assert failed_job in html  # what the database knows is still shown
