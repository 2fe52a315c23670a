"""The one way a job changes status: a conditional UPDATE plus its event; and sending without losing."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from shared.dispatch import Dispatcher
from shared.models import Job, JobEvent, utcnow
from shared.states import Status, sources_of

MAX_MESSAGE_CHARS = 2000
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
        update(Job)
        .where(Job.id == job_id, Job.status.in_(allowed), *where)
        .values(status=target.value, updated_at=now, **values)
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    job = session.scalars(stmt).one_or_none()
    if job is not None:
        session.add(JobEvent(job_id=job.id, status=job.status, progress=job.progress, message=job.message))
    return job


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
