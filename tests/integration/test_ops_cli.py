"""The operators' commands, run as a person runs them: the installed ``questboard`` script."""

from __future__ import annotations

import getpass
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from shared.admin import Operations
from shared.queues import QueueControl
from tests.integration.test_admin_support import PROBE, run_and_fail, submit

QUESTBOARD = str(Path(sys.executable).parent / "questboard")


@pytest.fixture
def run(env):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([QUESTBOARD, *args], env=env, capture_output=True, text=True, timeout=60)

    return run


def audit(app) -> list[tuple[str, str, str]]:
    from web.services import operations

    with app.app_context():
        ops: Operations = operations()
        return [(e["actor"], e["action"], e["target"]) for e in ops.audit_log()]


def test_viewer_created_on_the_command_line_may_look_but_not_act(run, client):
    created = run("users", "create", "watcher@example.com", "--viewer")
    assert created.returncode == 0, created.stderr
    assert "viewer" in created.stderr
    headers = {"Authorization": f"Bearer {created.stdout.strip().splitlines()[-1]}"}
    assert client.get("/api/admin/queues", headers=headers).status_code == 200
    assert client.post("/api/admin/queues/low/pause", headers=headers).status_code == 403
    both = run("users", "create", "x@example.com", "--viewer", "--admin")
    assert both.returncode != 0 and "not both" in both.stderr


def test_queues_pause_and_resume_like_the_console(run, app, settings):
    me = f"cli:{getpass.getuser()}"
    paused = run("queues", "pause", "low")
    assert paused.returncode == 0, paused.stderr
    assert QueueControl(settings.resolved_database_url).paused() == {"low"}
    assert run("queues", "resume", "low").returncode == 0
    assert QueueControl(settings.resolved_database_url).paused() == set()
    assert audit(app)[:2] == [(me, "queue.resume", "low"), (me, "queue.pause", "low")]

    unknown = run("queues", "pause", "urgent")
    assert unknown.returncode == 1
    assert "No queue 'urgent'; queues are critical, high, default, low." in unknown.stderr


def test_jobs_stats_failed_and_retry(run, app, client, alice, admin, settings):
    queued = submit(client, alice)
    failed = [submit(client, alice) for _ in range(3)]
    for job_id in failed:
        run_and_fail(settings, job_id)

    stats = run("jobs", "stats")
    assert stats.returncode == 0, stats.stderr
    assert "queued           1" in stats.stdout and "failed           3" in stats.stdout
    assert f"{PROBE}: queued=1 failed=3" in stats.stdout

    listed = run("jobs", "failed", "--type", PROBE)
    assert listed.returncode == 0
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()) == sorted(failed)
    assert "PermanentError: broken on purpose" in listed.stdout
    assert "no failed jobs of type report.export" in run("jobs", "failed", "--type", "report.export").stderr

    one = run("jobs", "retry", failed[0])
    assert one.returncode == 0 and f"retry job {failed[0]} ({PROBE}): now queued" in one.stdout
    bulk = run("jobs", "retry", "--type", PROBE)
    assert bulk.returncode == 0 and f"retry 2 failed {PROBE} job(s)" in bulk.stdout
    statuses = {client.get(f"/api/jobs/{i}", headers=admin.headers).get_json()["status"] for i in failed}
    assert statuses == {"queued"}
    assert audit(app)[0][1:] == ("job.retry_all", PROBE) and audit(app)[1][1:] == ("job.retry", failed[0])

    for bad, message in [
        (["jobs", "retry"], "give a job ID or --type T"),
        (["jobs", "retry", queued, "--type", PROBE], "give a job ID or --type T"),
        (["jobs", "retry", "nope"], "No such job."),
        (["jobs", "retry", queued], "Only failed jobs in the dead-letter set can be retried"),
    ]:
        result = run(*bad)
        assert result.returncode != 0 and message in result.stderr, (bad, result.stderr)


def test_flower_runs_behind_basic_auth(env, tmp_path):
    from questboard.testing import ManagedProcess, free_port, http_ok, wait_for

    port = free_port()
    flower = ManagedProcess(
        "flower",
        [QUESTBOARD, "flower", "--port", str(port)],
        {**env, "FLOWER_BASIC_AUTH": "ops:flower-pw"},
        tmp_path,
    )
    flower.start()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(base + "/healthcheck"), 30, what="flower")
        assert requests.get(base + "/", timeout=5).status_code == 401
        assert requests.get(base + "/", auth=("ops", "wrong"), timeout=5).status_code == 401
        assert requests.get(base + "/", auth=("ops", "flower-pw"), timeout=5).status_code == 200
    finally:
        flower.stop(timeout_s=10)


def test_flower_sees_the_tasks_though_workers_start_with_task_events_off(
    env, tmp_path, client, alice, worker
):
    """celeryconfig ships worker_send_task_events=False; Flower switches events on as it starts."""
    from questboard.testing import ManagedProcess, free_port, http_ok, wait_for

    port = free_port()
    flower = ManagedProcess(
        "flower",
        [QUESTBOARD, "flower", "--port", str(port)],
        {**env, "FLOWER_BASIC_AUTH": "ops:flower-pw"},
        tmp_path,
    )
    flower.start()
    try:
        base = f"http://127.0.0.1:{port}"
        auth = ("ops", "flower-pw")
        wait_for(lambda: http_ok(base + "/healthcheck"), 30, what="flower")
        wait_for(
            lambda: requests.get(base + "/api/workers?refresh=1", auth=auth, timeout=10).json(),
            30,
            what="flower to see the worker",
        )

        def submit_and_find() -> bool:
            resp = client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers)
            job_id = resp.get_json()["id"]
            tasks = wait_for(
                lambda: requests.get(base + "/api/tasks", auth=auth, timeout=10).json().get(job_id),
                5,
                what="the job in flower",
            )
            return tasks["name"] == "diagnostics.probe" and tasks["state"] == "SUCCESS"

        # Flower's enable_events broadcast reaches the worker shortly after Flower starts: a job sent
        # from then on is in its task view with its outcome.
        assert wait_for(
            lambda: _quietly(submit_and_find), 60, interval_s=1, what="a job in flower's task view"
        )
    finally:
        flower.stop(timeout_s=10)


def _quietly(check) -> bool:
    try:
        return check()
    except TimeoutError:
        return False
