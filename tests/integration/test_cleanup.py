"""What each recurring cleanup deletes or ends, on SQLite and PostgreSQL (``shared.cleanup``)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shared import defaults
from shared.cleanup import apply_retention, purge_magic_links, purge_sessions
from shared.db import get_sessionmaker
from shared.dispatch import NoDispatch
from shared.jobstate import Machine
from shared.models import (
    Job,
    JobAttempt,
    JobEvent,
    JobSlot,
    MagicLink,
    UserSession,
    WebhookDelivery,
    Workflow,
    WorkflowStep,
    utcnow,
)


@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url


def add_job(db, user_id: int, status: str, **values) -> str:
    now = utcnow()
    job = Job(user_id=user_id, type="diagnostics.probe", status=status, queue="default", params={}, **values)
    job.updated_at = values.get("updated_at", now)
    db.add(job)
    db.flush()
    return job.id


def add_workflow(db, user_id: int, status: str, finished_at, job_ids: list[str]) -> str:
    workflow = Workflow(user_id=user_id, status=status, created_at=utcnow() - timedelta(days=40))
    workflow.finished_at = finished_at
    db.add(workflow)
    db.flush()
    for position, job_id in enumerate(job_ids):
        db.add(WorkflowStep(job_id=job_id, workflow_id=workflow.id, key=f"s{position}", position=position))
    db.flush()
    return workflow.id


def test_magic_links_and_events(settings, alice):
    now = utcnow()
    with get_sessionmaker(settings.resolved_database_url)() as db:
        db.add_all(
            [
                MagicLink(user_id=alice.user.id, token_hash="old", expires_at=now - timedelta(seconds=1)),
                MagicLink(user_id=alice.user.id, token_hash="new", expires_at=now + timedelta(minutes=5)),
            ]
        )
        job_id = add_job(db, alice.user.id, "succeeded")
        db.add_all(
            [
                JobEvent(job_id=job_id, status="queued", progress=0, created_at=now - timedelta(hours=25)),
                JobEvent(
                    job_id=job_id, status="succeeded", progress=100, created_at=now - timedelta(hours=1)
                ),
            ]
        )
        db.commit()
        assert purge_magic_links(db, now) == 1
        assert db.scalars(select(MagicLink.token_hash)).all() == ["new"]
        assert machine_of(settings, []).purge_events(now - timedelta(hours=24)) == 1
        assert db.scalars(select(JobEvent.status)).all() == ["succeeded"]


def test_ended_sessions_are_deleted_and_live_ones_kept(settings, alice):
    now = utcnow()
    idle = timedelta(seconds=defaults.SESSION_IDLE_TIMEOUT_S + 1)
    later = now + timedelta(days=1)
    rows = {
        "live": dict(last_seen_at=now, expires_at=later),
        "expired": dict(last_seen_at=now, expires_at=now - timedelta(seconds=1)),
        "idle": dict(last_seen_at=now - idle, expires_at=later),
        "signed-out": dict(last_seen_at=now, expires_at=later, revoked_at=now),
    }
    with get_sessionmaker(settings.resolved_database_url)() as db:
        db.add_all(UserSession(id_hash=name, user_id=alice.user.id, **v) for name, v in rows.items())
        db.commit()
        assert purge_sessions(db, now) == 3
        assert db.scalars(select(UserSession.id_hash)).all() == ["live"]


def test_stale_running_jobs_fail_and_jobs_that_never_started_are_canceled(settings, alice):
    now = utcnow()
    published: list[dict] = []
    with get_sessionmaker(settings.resolved_database_url)() as db:
        stuck = add_job(
            db, alice.user.id, "running", updated_at=now - timedelta(hours=7), concurrency_key="k"
        )
        busy = add_job(db, alice.user.id, "running", updated_at=now - timedelta(minutes=5))
        forgotten = add_job(db, alice.user.id, "queued", updated_at=now - timedelta(days=31))
        waiting = add_job(db, alice.user.id, "queued", updated_at=now - timedelta(days=1))
        overdue = add_job(db, alice.user.id, "scheduled", scheduled_at=now - timedelta(days=31))
        future = add_job(
            db,
            alice.user.id,
            "scheduled",
            scheduled_at=now + timedelta(days=90),
            updated_at=now - timedelta(days=60),
        )
        db.add(JobSlot(key="k", slot=0, job_id=stuck))
        db.commit()

        counts = machine_of(settings, published).reap_stale(now, 6 * 3600, 30)
        db.expire_all()
        assert counts == {"failed": 1, "canceled": 2}
        status = dict(db.execute(select(Job.id, Job.status)).all())
        assert status == {
            stuck: "failed",
            busy: "running",
            forgotten: "canceled",
            waiting: "queued",
            overdue: "canceled",
            future: "scheduled",
        }
        assert db.get(Job, stuck).error["type"] == "StaleJob"
        assert db.scalar(select(func.count()).select_from(JobSlot)) == 0  # its slot is free again
        assert {j["id"] for j in published} == {stuck, forgotten, overdue}  # live pages hear about it


class Recorder:
    """A publisher that keeps what it was given."""

    def __init__(self, into: list[dict]) -> None:
        self.into = into

    def job_update(self, job: dict, user_id: int) -> None:
        self.into.append(job)

    def job_updates(self, jobs: list[dict], user_id: int) -> None:
        self.into.extend(jobs)


def machine_of(settings, published: list[dict]) -> Machine:
    return Machine(settings.resolved_database_url, Recorder(published), NoDispatch())


def test_the_reaper_closes_the_attempt_of_the_job_it_fails(settings, alice):
    """A reaped job leaves running as any other way out does: its open attempt closed as failed."""
    now = utcnow()
    with get_sessionmaker(settings.resolved_database_url)() as db:
        stuck = add_job(db, alice.user.id, "running", attempts=1, updated_at=now - timedelta(hours=7))
        db.add(JobAttempt(job_id=stuck, number=1, worker="w1", started_at=now - timedelta(hours=8)))
        db.commit()

        assert machine_of(settings, []).reap_stale(now, 6 * 3600, 30) == {"failed": 1, "canceled": 0}
        attempt = db.scalars(select(JobAttempt).where(JobAttempt.job_id == stuck)).one()
        assert attempt.finished_at is not None
        assert (attempt.outcome, attempt.error_type) == ("failed", "StaleJob")
        events = db.scalars(select(JobEvent.status).where(JobEvent.job_id == stuck)).all()
        assert events == ["failed"]


def test_retention_deletes_old_finished_jobs_with_their_files(settings, alice):
    now = utcnow()
    old = now - timedelta(days=31)
    exports = settings.instance_dir / "exports"
    exports.mkdir(parents=True)
    with get_sessionmaker(settings.resolved_database_url)() as db:
        gone = add_job(db, alice.user.id, "succeeded", finished_at=old, created_at=old)
        kept = add_job(db, alice.user.id, "failed", finished_at=now - timedelta(days=2))
        active = add_job(db, alice.user.id, "running", created_at=old)
        db.add(JobEvent(job_id=gone, status="succeeded", progress=100))
        db.add(WebhookDelivery(source="shop", delivery_id="d1", body="{}", received_at=old))
        # workflows: an old finished one whose only step goes now; an old finished one one of whose steps
        # is kept (it finished recently); one still running with an old start
        workflow_gone = add_workflow(db, alice.user.id, "succeeded", old, [gone])
        workflow_kept = add_workflow(db, alice.user.id, "failed", old, [kept])
        workflow_running = add_workflow(db, alice.user.id, "running", None, [active])
        db.commit()
        for name in (f"{gone}.csv", f"{kept}.json", "orphan.csv"):
            (exports / name).write_text("x")

        os.utime(exports / f"{gone}.csv", (old.timestamp(), old.timestamp()))
        stale_orphan = (now - timedelta(hours=2)).timestamp()

        os.utime(exports / "orphan.csv", (stale_orphan, stale_orphan))

        counts = apply_retention(db, machine_of(settings, []), now, 30, settings.instance_dir)
        assert counts == {"jobs": 1, "workflows": 1, "webhook_deliveries": 1, "export_files": 2}
        assert set(db.scalars(select(Job.id))) == {kept, active}
        assert set(db.scalars(select(Workflow.id))) == {workflow_kept, workflow_running}
        assert workflow_gone not in set(db.scalars(select(WorkflowStep.workflow_id)))
        assert db.scalar(select(func.count()).select_from(JobEvent)) == 0  # went with their job
    assert sorted(p.name for p in exports.iterdir()) == [f"{kept}.json"]
