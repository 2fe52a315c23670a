"""Concurrency slots: at most ``limit`` running jobs per concurrency key (Solid Queue's semaphore).

A slot is a row with a unique (key, slot) pair, taken in the same transaction that moves the job to
``running``; the unique constraint makes taking it atomic on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from shared.models import Job, JobSlot


def acquire(session: Session, job: Job) -> bool:
    """Take a free slot of the job's key for it; False when all are held.

    A concurrent taker on PostgreSQL surfaces as an IntegrityError at flush; the caller rolls back.
    """
    assert job.concurrency_key is not None
    limit = job.concurrency_limit or 1
    held = set(session.scalars(select(JobSlot.slot).where(JobSlot.key == job.concurrency_key)))
    free = [n for n in range(limit) if n not in held]
    if not free:
        return False
    session.add(JobSlot(key=job.concurrency_key, slot=free[0], job_id=job.id))
    session.flush()
    return True


def release(session: Session, job_id: str) -> None:
    session.execute(delete(JobSlot).where(JobSlot.job_id == job_id))


def held_count(session: Session, key: str) -> int:
    return session.scalar(select(func.count()).select_from(JobSlot).where(JobSlot.key == key)) or 0


def release_orphans(session: Session) -> int:
    """Drop slots whose job is no longer running (its holder crashed and was recovered elsewhere)."""
    running = select(Job.id).where(Job.status == "running")
    result = session.execute(delete(JobSlot).where(JobSlot.job_id.not_in(running)))
    return result.rowcount or 0
