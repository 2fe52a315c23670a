"""Flower tells the same truth as Questboard (contract §7): a real worker, a real Flower behind its basic
auth, and Flower's own API (``/api/task/info/<id>``, ``/api/tasks``) for a succeeded, a failed, a retrying
and a canceled job.

The Celery task id is the job id, and every attempt is its own message with that id (the maintenance loop
sends the next attempt when it is due), so Flower shows each job's latest attempt: RETRY between
attempts, then SUCCESS or FAILURE.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import select

from questboard.testing import ManagedProcess, free_port, http_ok, wait_for
from shared.db import get_sessionmaker
from shared.models import JobAttempt, JobEvent
from tests.integration.helpers_app import job, submit, wait_finished

QUESTBOARD = str(Path(sys.executable).parent / "questboard")
AUTH = ("ops", "flower-Truth-5e1")
STATE_OF = {"succeeded": "SUCCESS", "failed": "FAILURE", "canceled": "REVOKED", "retrying": "RETRY"}


@pytest.fixture
def flower(env, tmp_path):
    port = free_port()
    proc = ManagedProcess(
        "flower",
        [QUESTBOARD, "flower", "--port", str(port)],
        {**env, "FLOWER_BASIC_AUTH": ":".join(AUTH)},
        tmp_path,
    )
    proc.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_ok(base + "/healthcheck"), 30, what="flower")
        yield base
    finally:
        proc.stop(timeout_s=10)


def flower_state(base: str, task_id: str) -> str | None:
    resp = requests.get(f"{base}/api/task/info/{task_id}", auth=AUTH, timeout=5)
    return resp.json().get("state") if resp.status_code == 200 else None


def warm_up(client, alice, flower) -> list[str]:
    """Flower switches task events on in the workers it sees (every few seconds): probe until it sees one."""
    warm: list[str] = []

    def flower_saw_a_task() -> bool:
        warm.append(wait_finished(client, alice, submit(client, alice, "diagnostics.probe")["id"])["id"])
        return any(flower_state(flower, w) == "SUCCESS" for w in warm)

    wait_for(flower_saw_a_task, 40, 0.5, what="Flower to see a task")
    return warm


def test_flower_shows_each_job_in_its_real_state(client, alice, admin, settings, flower, worker):
    warm = warm_up(client, alice, flower)

    ok = submit(client, alice, "diagnostics.probe", {"steps": 2})["id"]
    failing = submit(client, alice, "diagnostics.probe", {"fail_always": True})["id"]
    # Two failed attempts before the third succeeds: RETRY lasts from a failed attempt until the next is
    # sent (the second wait is about a second).
    retrying = submit(client, alice, "diagnostics.probe", {"fail_first_attempts": 2})["id"]
    long = submit(client, alice, "diagnostics.probe", {"steps": 100, "step_ms": 100})["id"]

    seen: list[str | None] = []

    def retried_then_succeeded() -> bool:
        seen.append(flower_state(flower, retrying))
        return seen[-1] == "SUCCESS"

    wait_for(retried_then_succeeded, 40, 0.02, what="the retrying job's attempts in Flower")
    assert "RETRY" in seen, seen  # an attempt that will be retried is RETRY, never SUCCESS
    assert seen.index("RETRY") < len(seen) - 1 and seen[-1] == "SUCCESS"

    wait_for(lambda: job(client, alice, long)["progress"] >= 5, 20, what="the long job running")
    assert client.post(f"/api/jobs/{long}/cancel", headers=alice.headers).status_code == 202

    finished = {job_id: wait_finished(client, alice, job_id) for job_id in (ok, failing, retrying, long)}
    assert [finished[j]["status"] for j in (ok, failing, retrying, long)] == [
        "succeeded",
        "failed",
        "succeeded",
        "canceled",
    ]
    assert finished[retrying]["attempts"] == 3 and finished[failing]["attempts"] == 3

    for job_id, done in finished.items():
        expected = STATE_OF[done["status"]]
        wait_for(
            lambda j=job_id, e=expected: flower_state(flower, j) == e, 15, 0.1, what=f"{job_id} {expected}"
        )
    info = requests.get(f"{flower}/api/task/info/{failing}", auth=AUTH, timeout=5).json()
    assert "probe failure on attempt 3" in (info.get("exception") or ""), info  # the job's own error

    # Flower's counts are the console's, for the tasks it saw.
    tasks = requests.get(f"{flower}/api/tasks", auth=AUTH, timeout=5).json()
    flower_counts = Counter(t["state"] for t in tasks.values())
    by_status = client.get("/api/admin/stats", headers=admin.headers).get_json()["by_status"]
    console_counts = Counter({STATE_OF[s]: n for s, n in by_status.items() if n and s in STATE_OF})
    # (warm-up probes Flower did not see are succeeded jobs it cannot count)
    unseen = sum(1 for w in warm if flower_state(flower, w) is None)
    console_counts["SUCCESS"] -= unseen
    assert (
        flower_counts
        == console_counts
        == Counter({"SUCCESS": 2 + len(warm) - unseen, "FAILURE": 1, "REVOKED": 1})
    )

    # Every message was acknowledged once and none was sent again by Celery: one delivery per attempt.
    broker = redis.Redis.from_url(settings.redis_url)
    wait_for(lambda: broker.hlen("unacked") == 0, 10, what="every message acknowledged")  # the pool acks
    assert all(broker.llen(q) == 0 for q in ("critical", "high", "default", "low"))
    log = worker.output()
    received = {j: log.count(f"[{j}] received") for j in (ok, failing, retrying, long)}
    assert received == {ok: 1, failing: 3, retrying: 3, long: 1}, received
    # Expected outcomes are not worker errors: no ERROR line, no traceback (the job keeps its traceback).
    bad = [x for x in log.splitlines() if '"level": "error"' in x or x.startswith("Traceback")]
    assert not bad, bad


def test_a_job_canceled_while_queued_is_revoked_in_flower(client, alice, flower, worker):
    warm_up(client, alice, flower)
    busy = [
        submit(client, alice, "diagnostics.probe", {"steps": 100, "step_ms": 100})["id"] for _ in range(2)
    ]
    for job_id in busy:  # both pool processes (concurrency 2) are taken: the next job waits in the queue
        wait_for(lambda j=job_id: job(client, alice, j)["status"] == "running", 20, what="a busy worker")
    waiting = submit(client, alice, "diagnostics.probe")["id"]
    canceled = client.post(f"/api/jobs/{waiting}/cancel", headers=alice.headers)
    assert canceled.status_code == 202 and canceled.get_json()["status"] == "canceled"
    for job_id in busy:
        assert client.post(f"/api/jobs/{job_id}/cancel", headers=alice.headers).status_code == 202
    # Its message still reaches the worker, which does not run it and reports it REVOKED, not SUCCESS.
    wait_for(lambda: f"[{waiting}] received" in worker.output(), 20, what="the canceled job's message")
    for job_id in (waiting, *busy):
        assert wait_finished(client, alice, job_id)["status"] == "canceled"
        wait_for(lambda j=job_id: flower_state(flower, j) == "REVOKED", 15, 0.1, what=f"{job_id} REVOKED")
    assert job(client, alice, waiting)["started_at"] is None


def test_a_revoke_with_terminate_from_flower_ends_the_running_job_canceled(
    client, alice, settings, flower, worker
):
    """Flower's own revoke (``POST /api/task/revoke/<task id>?terminate=true``) of a running job's task: the
    job ends canceled within 5 s, its attempt closed, and Flower shows REVOKED."""
    warm_up(client, alice, flower)
    long = submit(client, alice, "diagnostics.probe", {"steps": 600, "step_ms": 100})["id"]
    wait_for(lambda: job(client, alice, long)["status"] == "running", 20, what="the long job running")

    resp = requests.post(f"{flower}/api/task/revoke/{long}?terminate=true", auth=AUTH, timeout=10)
    assert resp.status_code == 200, resp.text

    done = wait_for(lambda: (j := job(client, alice, long))["status"] == "canceled" and j, 5, 0.05)
    with get_sessionmaker(settings.resolved_database_url)() as session:
        attempts = list(session.scalars(select(JobAttempt).where(JobAttempt.job_id == long)))
        said = list(session.scalars(select(JobEvent.message).where(JobEvent.job_id == long)))
    # A prefork pool's process is ended ("Canceled through Celery (revoke, terminated)"); a thread pool
    # ends no process, so the body is asked to stop and stops at its next progress point.
    assert done["message"].startswith("Canceled through Celery (revoke") or any(
        (m or "").startswith("Cancel requested through Celery (revoke") for m in said
    ), (done["message"], said)
    assert [(a.outcome, a.finished_at is not None) for a in attempts] == [("canceled", True)]
    wait_for(lambda: flower_state(flower, long) == "REVOKED", 15, 0.1, what="REVOKED in Flower")
    # The owner's next job runs (the pool replaced the terminated process); the revoked one stays canceled.
    after = submit(client, alice, "diagnostics.probe")["id"]
    assert wait_finished(client, alice, after)["status"] == "succeeded"
    assert job(client, alice, long)["status"] == "canceled"
