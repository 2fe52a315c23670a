"""Recurring tasks: beat (RedBeat, one leader) sends ``questboard.recurring``; a real worker turns each
send into a job of the system user; the cleanup types delete what is old and keep the rest."""

from __future__ import annotations

import json
from datetime import timedelta

from redbeat import RedBeatSchedulerEntry
from sqlalchemy import select

from questboard.cli import beat_argv
from questboard.testing import ManagedProcess, wait_for
from shared.db import get_sessionmaker
from shared.models import Job, MagicLink, utcnow
from shared.system import SYSTEM_EMAIL
from tests.integration.helpers_app import wait_finished
from workers.celery_app import make_celery


def jobs_of(settings, job_type: str) -> list[Job]:
    with get_sessionmaker(settings.resolved_database_url)() as db:
        return list(db.scalars(select(Job).where(Job.type == job_type).order_by(Job.created_at)))


def test_recurring_task_becomes_a_system_job_that_runs(client, accounts, admin, settings, worker):
    sessions = get_sessionmaker(settings.resolved_database_url)
    with sessions() as db:
        db.add(
            MagicLink(user_id=admin.user.id, token_hash="a" * 64, expires_at=utcnow() - timedelta(minutes=1))
        )
        db.add(
            MagicLink(user_id=admin.user.id, token_hash="b" * 64, expires_at=utcnow() + timedelta(minutes=9))
        )
        db.commit()
    make_celery(settings).send_task("questboard.recurring", args=["cleanup.magic_links"], queue="high")

    run = wait_for(lambda: jobs_of(settings, "cleanup.magic_links"), 20, what="the cleanup job row")[0]
    done = wait_finished(client, admin, run.id)
    assert (
        done["status"] == "succeeded"
        and done["result"] == {"deleted": 1, "sessions_deleted": 0}
        and done["queue"] == "low"
    )
    assert accounts.get_user(run.user_id).email == SYSTEM_EMAIL
    with sessions() as db:
        assert db.scalars(select(MagicLink.token_hash)).all() == ["b" * 64]
    listed = client.get("/api/jobs?type=cleanup.magic_links", headers=admin.headers).get_json()["jobs"]
    assert [j["id"] for j in listed] == [run.id]  # every run shows in the job list
    # The job hooks logged the run with its duration and memory (structured, one JSON object a line).
    line = wait_for(
        lambda: next(
            (x for x in worker.output().splitlines() if f"job performed job_id={run.id}" in x), None
        ),
        10,
        what="the job's log line",
    )
    logged = json.loads(line)
    assert logged["job_type"] == "cleanup.magic_links" and logged["duration_ms"] >= 0
    assert logged["peak_memory_kb"] > 0


def test_a_person_cannot_run_cleanups(client, alice):
    # Cleanups are internal: a person's submit is refused like an unknown type, before anything runs.
    resp = client.post(
        "/api/jobs",
        json={"type": "cleanup.retention", "params": {"retention_days": 1}},
        headers=alice.headers,
    )
    assert resp.status_code == 422
    assert resp.get_json()["error"]["fields"] == {"type": "unknown job type"}
    assert client.get("/api/jobs", headers=alice.headers).get_json()["jobs"] == []


def test_beat_sends_on_schedule_and_only_one_beat_leads(env, settings, tmp_path, worker):
    app = make_celery(settings)
    entry = RedBeatSchedulerEntry(
        "test-probe",
        "questboard.recurring",
        timedelta(seconds=1),
        args=["diagnostics.probe"],
        options={"queue": "high"},
        app=app,
    )
    entry.save()
    beats = [ManagedProcess(f"beat-{n}", beat_argv(settings.instance_dir), env, tmp_path) for n in (1, 2)]
    for beat in beats:
        beat.start()
    try:
        runs = wait_for(
            lambda: len(r := jobs_of(settings, "diagnostics.probe")) >= 4 and r, 30, what="4 runs"
        )
        gaps = [(b.created_at - a.created_at).total_seconds() for a, b in zip(runs, runs[1:], strict=False)]
        assert all(gap > 0.5 for gap in gaps), gaps  # two leaders would send each run twice
        leaders = [b for b in beats if "Acquired lock" in b.output()]
        assert len(leaders) == 1, [b.output()[-2000:] for b in beats]
        for definition in app.conf.beat_schedule.values():  # what RedBeat stores must be JSON
            assert definition["task"] == "questboard.recurring" and json.dumps(definition["args"])
    finally:
        for beat in beats:
            beat.stop(timeout_s=10)
