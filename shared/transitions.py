"""The one way a job changes status: a conditional UPDATE plus its event; and sending without losing."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session, sessionmaker

from shared.dispatch import Dispatcher
from shared.models import Job, JobEvent, utcnow
from shared.states import Status, sources_of

MAX_MESSAGE_CHARS = 2000
JOBS = Job.__table__
EVENTS = JobEvent.__table__
log = logging.getLogger("questboard.lifecycle")


def transition(
    session: Session,
    job_id: str,
    target: Status,
    *,
    sources: Iterable[Status] | None = None,
    now: datetime | None = None,
    where: Iterable[Any] = (),
    **values: Any,
) -> Job | None:
    """Move the job to ``target`` if it is in one of ``sources``; the updated job, or None if it was not."""
    allowed = [s.value for s in (sources if sources is not None else sources_of(target))]
    now = now or utcnow()
    stmt = (
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.status.in_(allowed), *where)
        .values(status=target.value, updated_at=now, **values)
        .returning(*JOBS.c)
    )
    return record_with_event(session, stmt)


def record_with_event(session: Session, stmt: Any) -> Job | None:
    """Run a Core UPDATE .. RETURNING on ``jobs``; when it hit the row, add its event. Core, not ORM-enabled
    DML: a third less CPU per transition (BENCHMARKS.md, P1). The row comes back as a plain record with
    the job's attributes, detached from the session."""
    row = session.execute(stmt).mappings().one_or_none()
    if row is None:
        return None
    session.execute(
        insert(EVENTS).values(
            job_id=row["id"],
            status=row["status"],
            progress=row["progress"],
            message=row["message"],
            created_at=utcnow(),
        )
    )
    return SimpleNamespace(**row)  # type: ignore[return-value]


def safe_send(sessions: sessionmaker[Session], dispatcher: Dispatcher, job: Job | dict[str, Any]) -> bool:
    """Send the job's message; on a broker error flag it for the maintenance loop instead of losing it."""
    job_id, job_type, queue = (
        (job["id"], job["type"], job["queue"]) if isinstance(job, dict) else (job.id, job.type, job.queue)
    )
    try:
        dispatcher.send(job_id, job_type, queue)
        return True
    except Exception as exc:  # any broker error: the job is safe in the database and is sent later
        log.warning("dispatch failed; will send again", extra={"job_id": job_id, "error": repr(exc)})
        with sessions() as session:
            session.execute(update(Job).where(Job.id == job_id).values(needs_dispatch=True))
            session.commit()
        return False
