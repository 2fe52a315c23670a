"""Why is it waiting? on the job page, in the job object and from ``questboard jobs why`` (the installed
script), for the owner; a finished job waits for nothing; an unknown id is an error."""

from __future__ import annotations

import html
import subprocess
import sys
from pathlib import Path

from shared.queues import QueueControl
from tests.integration.helpers_app import log_in, wait_finished

QUESTBOARD = str(Path(sys.executable).parent / "questboard")


def why(env, job_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [QUESTBOARD, "jobs", "why", job_id], env=env, capture_output=True, text=True, timeout=60
    )


def submit(client, person, **body) -> dict:
    resp = client.post("/api/jobs", json={"type": "diagnostics.probe", **body}, headers=person.headers)
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()


def test_page_api_and_cli_say_why_a_scheduled_job_waits(client, accounts, alice, bob, env):
    job = submit(client, alice, delay_seconds=3600)
    got = client.get(f"/api/jobs/{job['id']}", headers=alice.headers).get_json()
    reason = got["waiting_reason"]
    assert reason["code"] == "scheduled" and reason["until"] == got["scheduled_at"]
    # Lists leave it out: it costs queries per job.
    listed = client.get("/api/jobs", headers=alice.headers).get_json()["jobs"]
    assert "waiting_reason" not in listed[0]

    log_in(client, accounts, alice)
    page = html.unescape(client.get(f"/jobs/{job['id']}").get_data(as_text=True))
    assert 'data-role="waiting" data-code="scheduled"' in page
    assert "Why is it waiting?" in page and reason["message"] in page

    out = why(env, job["id"])
    assert out.returncode == 0, out.stderr
    assert reason["message"] in out.stdout and "reason: scheduled until" in out.stdout
    assert client.get(f"/api/jobs/{job['id']}", headers=bob.headers).status_code == 404


def test_a_paused_queue_is_named_on_the_page(client, accounts, alice, settings, env):
    QueueControl(settings.resolved_database_url).set_paused("low", True, "test")
    job = submit(client, alice, queue="low")
    log_in(client, accounts, alice)
    page = html.unescape(client.get(f"/jobs/{job['id']}").get_data(as_text=True))
    assert 'data-code="queue_paused"' in page and "Queue low is paused" in page
    assert "Queue low is paused" in why(env, job["id"]).stdout


def test_a_finished_job_waits_for_nothing_and_an_unknown_id_is_an_error(client, accounts, alice, env, worker):
    job = submit(client, alice)
    done = wait_finished(client, alice, job["id"])
    assert client.get(f"/api/jobs/{done['id']}", headers=alice.headers).get_json()["waiting_reason"] is None
    log_in(client, accounts, alice)
    assert 'data-role="waiting"' not in client.get(f"/jobs/{done['id']}").get_data(as_text=True)
    out = why(env, done["id"])
    assert out.returncode == 0 and "is succeeded: not waiting" in out.stdout, out
    unknown = why(env, "nope")
    assert unknown.returncode != 0 and "No job 'nope'" in unknown.stderr, unknown
