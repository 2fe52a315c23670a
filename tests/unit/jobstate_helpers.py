"""Jobs in a given state, and the invariants every move must leave true (tests of shared.jobstate)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from shared.db import get_sessionmaker
from shared.models import Job, JobAttempt, JobEvent, JobSlot, Workflow, new_id, utcnow

# Attempt rows of an attempt given back (the job did not use it up).
GIVEN_BACK = ("requeued", "postponed")


def add_workflow(url: str, user_id: int) -> str:
    """A running workflow (for jobs that are its steps)."""
    with get_sessionmaker(url)() as session:
        workflow = Workflow(user_id=user_id, status="running")
        session.add(workflow)
        session.commit()
        return workflow.id


def add_job(
    url: str, user_id: int, status: str, now: datetime | None = None, slot: int = 0, **values: Any
) -> str:
    """A job in ``status`` as the machine would have left it: a running one with its open attempt (and
    slot, if keyed), a retrying/failed/succeeded one with its closed attempt; and its last event.
    ``step=True``: a step of a new workflow."""
    if values.pop("step", False):
        values["workflow_id"] = add_workflow(url, user_id)
    now = now or utcnow()
    running = status == "running"
    ran = status in ("running", "retrying", "failed", "succeeded")
    row: dict[str, Any] = {
        "id": new_id(),
        "user_id": user_id,
        "type": "diagnostics.probe",
        "status": status,
        "queue": "default",
        "params": {},
        "message": status,
        "attempts": 1 if ran else 0,
        "max_attempts": 3,
        "worker": "w1" if running else None,
        "worker_pid": 101 if running else None,
        "created_at": now - timedelta(hours=12),
        "updated_at": now - timedelta(hours=10),
        "scheduled_at": now - timedelta(minutes=1) if status in ("scheduled", "retrying") else None,
        "started_at": now - timedelta(hours=11) if ran else None,
        "finished_at": now - timedelta(hours=10) if status in ("failed", "succeeded", "canceled") else None,
    }
    row.update(values)
    with get_sessionmaker(url)() as session:
        job = Job(**row)
        session.add(job)
        session.flush()
        if ran:
            outcome = {"running": None, "succeeded": "succeeded"}.get(status, "failed")
            session.add(
                JobAttempt(
                    job_id=job.id,
                    number=1,
                    worker="w1",
                    started_at=row["started_at"],
                    finished_at=None if running else row["updated_at"],
                    outcome=outcome,
                )
            )
        if running and job.concurrency_key is not None:
            session.add(JobSlot(key=job.concurrency_key, slot=slot, job_id=job.id))
        session.add(
            JobEvent(job_id=job.id, status=status, progress=0, message=status, created_at=row["updated_at"])
        )
        session.commit()
        return job.id


def snapshot(url: str, job_id: str) -> dict[str, Any]:
    with get_sessionmaker(url)() as session:
        job = session.get(Job, job_id)
        assert job is not None
        events = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        ).all()
        return {
            "status": job.status,
            "held": job.held,
            "params": job.params,
            "scheduled_at": job.scheduled_at,
            "updated_at": job.updated_at,
            "events": [(e.status, e.message) for e in events],
        }


def broken_invariants(url: str, job_ids: list[str] | None = None) -> list[str]:
    """Every job (or those of ``job_ids``): not running -> no open attempt and no slot; not queued -> not
    held for fair share; its last event has its status; ``attempts`` = the attempt rows that ran
    (given-back ones excluded)."""
    problems = []
    with get_sessionmaker(url)() as session:
        jobs = select(Job) if job_ids is None else select(Job).where(Job.id.in_(job_ids))
        for job in session.scalars(jobs):
            open_attempts = session.scalar(
                select(func.count())
                .select_from(JobAttempt)
                .where(JobAttempt.job_id == job.id, JobAttempt.finished_at.is_(None))
            )
            slots = session.scalar(select(func.count()).select_from(JobSlot).where(JobSlot.job_id == job.id))
            ran = session.scalar(
                select(func.count())
                .select_from(JobAttempt)
                .where(
                    JobAttempt.job_id == job.id,
                    or_(JobAttempt.outcome.is_(None), JobAttempt.outcome.not_in(GIVEN_BACK)),
                )
            )
            last = session.scalars(
                select(JobEvent.status).where(JobEvent.job_id == job.id).order_by(JobEvent.id.desc()).limit(1)
            ).first()
            if job.status != "running" and open_attempts:
                problems.append(f"{job.id} {job.status} has {open_attempts} open attempt(s)")
            if job.status == "running" and open_attempts != 1:
                problems.append(f"{job.id} running with {open_attempts} open attempts")
            if job.status != "running" and slots:
                problems.append(f"{job.id} {job.status} holds {slots} slot(s)")
            if job.status != "queued" and job.held:
                problems.append(f"{job.id} {job.status} is still held for its fair-share turn")
            if last != job.status:
                problems.append(f"{job.id} is {job.status} but its last event says {last}")
            if job.attempts != ran:
                problems.append(f"{job.id} attempts={job.attempts} but {ran} attempt rows ran")
    return problems
