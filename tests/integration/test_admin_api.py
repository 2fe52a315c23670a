"""The admin API (contract §3) on SQLite and PostgreSQL, against a real Redis and real jobs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from celery.schedules import schedule
from redbeat import RedBeatSchedulerEntry

from questboard.testing import wait_for
from shared.queues import QueueControl
from tests.integration.test_admin_support import PROBE, run_and_fail, submit


@pytest.fixture
def db_url(database_url: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL."""
    return database_url


def audit(client, admin) -> list[dict]:
    return [(e["actor"], e["action"], e["target"]) for e in _ops(client).audit_log()]


def _ops(client):
    from web.services import operations

    with client.application.app_context():
        return operations()


def test_stats_count_jobs_by_status_and_by_type(client, alice, admin, settings):
    submit(client, alice)
    submit(client, alice)
    run_and_fail(settings, submit(client, alice))

    stats = client.get("/api/admin/stats", headers=admin.headers).get_json()

    assert stats["by_status"]["queued"] == 2
    assert stats["by_status"]["failed"] == 1
    assert stats["by_status"]["succeeded"] == 0  # every status is listed
    assert stats["by_type"] == {PROBE: {"queued": 2, "failed": 1}}


def test_queues_show_depth_latency_and_survive_pause_and_resume(client, alice, admin, settings):
    submit(client, alice, queue="low")
    submit(client, alice, queue="low")

    queues = {q["name"]: q for q in client.get("/api/admin/queues", headers=admin.headers).get_json()}

    assert list(queues) == ["critical", "high", "default", "low"]
    assert set(queues["low"]) == {"name", "depth", "latency_seconds", "paused", "workers"}
    assert queues["low"]["depth"] == 2  # both messages wait in the broker's list
    assert queues["low"]["latency_seconds"] > 0
    assert queues["default"] == {
        "name": "default",
        "depth": 0,
        "latency_seconds": 0.0,
        "paused": False,
        "workers": [],
    }

    paused = client.post("/api/admin/queues/low/pause", headers=admin.headers)
    assert paused.status_code == 200 and paused.get_json()["paused"] is True
    assert QueueControl(settings.resolved_database_url).paused() == {"low"}
    listed = {q["name"]: q for q in client.get("/api/admin/queues", headers=admin.headers).get_json()}
    assert listed["low"]["paused"] is True and listed["low"]["depth"] == 2

    resumed = client.post("/api/admin/queues/low/resume", headers=admin.headers)
    assert resumed.status_code == 200 and resumed.get_json()["paused"] is False
    assert QueueControl(settings.resolved_database_url).paused() == set()
    assert audit(client, admin)[:2] == [
        ("ops@example.com", "queue.resume", "low"),
        ("ops@example.com", "queue.pause", "low"),
    ]

    unknown = client.post("/api/admin/queues/urgent/pause", headers=admin.headers)
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "not_found"


def test_failed_jobs_list_their_errors_and_are_retried_or_discarded(client, alice, admin, settings):
    ids = [submit(client, alice) for _ in range(4)]
    for job_id in ids:
        run_and_fail(settings, job_id)

    failed = client.get("/api/admin/failed", headers=admin.headers).get_json()
    assert sorted(j["id"] for j in failed) == sorted(ids)
    first = failed[0]
    assert first["status"] == "failed"
    assert first["error"] == {"type": "PermanentError", "message": "broken on purpose"}
    assert "PermanentError: broken on purpose" in first["attempts_history"][-1]["traceback"]
    assert client.get("/api/admin/failed?type=character.generate", headers=admin.headers).get_json() == []

    retried = client.post(f"/api/admin/failed/{ids[0]}/retry", headers=admin.headers)
    assert retried.status_code == 200 and retried.get_json()["status"] == "queued"
    again = client.post(f"/api/admin/failed/{ids[0]}/retry", headers=admin.headers)
    assert again.status_code == 409  # no longer a dead letter
    discarded = client.post(f"/api/admin/failed/{ids[1]}/discard", headers=admin.headers)
    assert discarded.status_code == 200 and discarded.get_json()["status"] == "failed"
    missing = client.post("/api/admin/failed/nope/retry", headers=admin.headers)
    assert missing.status_code == 404

    remaining = {
        j["id"] for j in client.get(f"/api/admin/failed?type={PROBE}", headers=admin.headers).get_json()
    }
    assert remaining == {ids[2], ids[3]}

    bulk = client.post("/api/admin/failed/retry", json={"type": PROBE}, headers=admin.headers)
    assert bulk.status_code == 200 and bulk.get_json() == {"count": 2}
    assert client.get("/api/admin/failed", headers=admin.headers).get_json() == []
    statuses = {client.get(f"/api/jobs/{i}", headers=admin.headers).get_json()["status"] for i in ids[2:]}
    assert statuses == {"queued"}
    assert client.post(
        "/api/admin/failed/discard", json={"type": PROBE}, headers=admin.headers
    ).get_json() == {"count": 0}

    no_type = client.post("/api/admin/failed/retry", json={}, headers=admin.headers)
    assert no_type.status_code == 422 and "type" in no_type.get_json()["error"]["fields"]
    not_json = client.post("/api/admin/failed/retry", data="{", headers=admin.headers)
    assert not_json.status_code == 400

    actions = audit(client, admin)
    assert ("ops@example.com", "job.retry", ids[0]) in actions
    assert ("ops@example.com", "job.discard", ids[1]) in actions
    assert ("ops@example.com", "job.retry_all", PROBE) in actions


def test_recurring_tasks_come_from_redbeat_and_can_be_paused_and_run(client, admin, settings, redis_server):
    from workers.celery_app import make_celery
    from workers.recurring import RecurringTasks

    app = RecurringTasks(make_celery(settings)).app
    configured = client.get("/api/admin/recurring", headers=admin.headers).get_json()
    # Beat has not run: the entries of celeryconfig.beat_schedule are listed from the configuration.
    assert {e["name"] for e in configured} == set(app.conf.beat_schedule)
    assert all(e["last_run_at"] is None and e["paused"] is False for e in configured)

    RedBeatSchedulerEntry(
        "probe-canary", "diagnostics.probe", schedule(300), args=["canary"], options={"queue": "low"}, app=app
    ).save()
    listed = {e["name"]: e for e in client.get("/api/admin/recurring", headers=admin.headers).get_json()}
    entry = listed["probe-canary"]
    assert set(entry) >= {"name", "schedule", "last_run_at", "next_run_at", "paused"}
    assert entry["schedule"] == "every 5 min"
    assert entry["paused"] is False
    last, due = (
        datetime.fromisoformat(entry[k].replace("Z", "+00:00")) for k in ("last_run_at", "next_run_at")
    )
    assert (due - last).total_seconds() == pytest.approx(300, abs=1)

    paused = client.post("/api/admin/recurring/probe-canary/pause", headers=admin.headers).get_json()
    assert paused["paused"] is True and paused["next_run_at"] is None
    assert RedBeatSchedulerEntry.from_key("redbeat:probe-canary", app=app).enabled is False

    redis = redis_server.client()
    before = redis.llen("low")
    ran = client.post("/api/admin/recurring/probe-canary/run", headers=admin.headers)
    assert ran.status_code == 200
    wait_for(lambda: redis.llen("low") == before + 1, 5, what="the task's message in queue low")
    assert client.post("/api/admin/recurring/nope/run", headers=admin.headers).status_code == 404
    assert [a for _, a, t in audit(client, admin) if t == "probe-canary"] == [
        "recurring.run",
        "recurring.pause",
    ]


def test_workers_are_listed_with_their_queues_and_running_jobs(client, alice, admin, start_worker):
    proc = start_worker(queues="default", concurrency=1)
    job_id = submit(client, alice, steps=200, step_ms=50)
    wait_for(
        lambda: client.get(f"/api/jobs/{job_id}", headers=alice.headers).get_json()["status"] == "running",
        20,
        what="the job running",
    )

    [worker] = client.get("/api/admin/workers", headers=admin.headers).get_json()

    assert worker["name"].startswith(proc.name.removeprefix("worker-") + "@")
    assert worker["queues"] == ["default"] and worker["concurrency"] == 1
    assert worker["current_jobs"] == [job_id]
    seen = datetime.fromisoformat(worker["last_heartbeat"].replace("Z", "+00:00"))
    assert (datetime.now(UTC) - seen).total_seconds() < 10
    queues = {q["name"]: q for q in client.get("/api/admin/queues", headers=admin.headers).get_json()}
    assert queues["default"]["workers"] == [worker["name"]] and queues["high"]["workers"] == []
    client.post(f"/api/jobs/{job_id}/cancel", headers=alice.headers)  # a quick stop for the worker


def test_a_paused_recurring_task_stays_paused_when_beat_restarts(client, admin, settings):
    from redbeat import RedBeatScheduler

    from workers.celery_app import make_celery
    from workers.recurring import PausableRedBeatScheduler, RecurringTasks

    def paused() -> dict[str, bool]:
        return {
            e["name"]: e["paused"]
            for e in client.get("/api/admin/recurring", headers=admin.headers).get_json()
        }

    app = RecurringTasks(make_celery(settings)).app
    PausableRedBeatScheduler(app=app)  # beat starts: it stores the configured entries
    assert client.post("/api/admin/recurring/cleanup-events/pause", headers=admin.headers).status_code == 200

    PausableRedBeatScheduler(app=app)  # beat restarts (as `questboard beat` runs it)
    now = paused()
    assert {name: now[name] for name in app.conf.beat_schedule} == {
        name: name == "cleanup-events" for name in app.conf.beat_schedule
    }

    RedBeatScheduler(app=app)  # what plain RedBeat would do on a restart: the pause would be lost
    assert paused()["cleanup-events"] is False


def test_queue_depth_counts_the_messages_of_process_types_too(settings, alice, admin):
    """A ``pool="process"`` type's messages wait on the queue's process twin (``low.process``): they
    are part of the queue's depth (they were left out, so a backlog only prefork workers serve hid)."""
    from web import create_app

    app = create_app(settings.model_copy(update={"job_modules": "tests.reliability.jobtypes"}), TESTING=True)
    client = app.test_client()
    for job_type in ("test.where", "test.where", "test.sleep"):  # two process-type messages, one not
        response = client.post(
            "/api/jobs", json={"type": job_type, "params": {}, "queue": "low"}, headers=alice.headers
        )
        assert response.status_code == 202, response.get_json()
    queues = {q["name"]: q for q in client.get("/api/admin/queues", headers=admin.headers).get_json()}
    assert queues["low"]["depth"] == 3
