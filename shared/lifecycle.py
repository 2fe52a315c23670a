"""Named transitions of a job, each one conditional UPDATE plus its event, published after commit.

``claim`` is atomic: a message delivered twice, or a job canceled while its message waited, runs the body
at most once, because only one UPDATE can move the row from ``queued`` to ``running``.
"""

from __future__ import annotations

import traceback as tb_module
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.db import get_sessionmaker
from shared.dispatch import Dispatcher
from shared.jobtypes import RetryPolicy
from shared.models import Job, JobAttempt, JobEvent, utcnow
from shared.publisher import Publisher
from shared.serialize import job_to_dict
from shared.states import Status, sources_of

MAX_MESSAGE_CHARS = 2000


def transition(
    session: Session,
    job_id: str,
    target: Status,
    *,
    sources: Iterable[Status] | None = None,
    now: datetime | None = None,
    **values: Any,
) -> Job | None:
    """Move the job to ``target`` if it is in one of ``sources``; the updated job, or None if it was not."""
    allowed = [s.value for s in (sources if sources is not None else sources_of(target))]
    now = now or utcnow()
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_(allowed))
        .values(status=target.value, updated_at=now, **values)
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    job = session.scalars(stmt).one_or_none()
    if job is not None:
        session.add(JobEvent(job_id=job.id, status=job.status, progress=job.progress, message=job.message))
    return job


class Lifecycle:
    """The transitions workers and the maintenance loop apply, with publishing and dispatch."""

    def __init__(self, database_url: str, publisher: Publisher, dispatcher: Dispatcher) -> None:
        self._sessions = get_sessionmaker(database_url)
        self.publisher = publisher
        self.dispatcher = dispatcher

    def _commit_and_publish(self, session: Session, job: Job | None) -> Job | None:
        session.commit()
        if job is not None:
            self.publisher.job_update(job_to_dict(job), job.user_id)
        return job

    def claim(self, job_id: str, worker: str) -> Job | None:
        """queued -> running, counting the attempt. None when somebody else has it or it was canceled."""
        with self._sessions() as session:
            now = utcnow()
            job = transition(
                session,
                job_id,
                Status.RUNNING,
                sources=[Status.QUEUED],
                now=now,
                attempts=Job.attempts + 1,
                started_at=now,
                finished_at=None,
                worker=worker,
                message="Started",
            )
            if job is None:
                session.rollback()
                return None
            session.add(JobAttempt(job_id=job_id, number=job.attempts, worker=worker, started_at=now))
            return self._commit_and_publish(session, job)

    def progress(self, job_id: str, percent: int, message: str) -> bool:
        """Record progress of a running job; True when a cancel was asked for."""
        percent = max(0, min(100, int(percent)))
        with self._sessions() as session:
            stmt = (
                update(Job)
                .where(Job.id == job_id, Job.status == Status.RUNNING.value)
                .values(progress=percent, message=message[:MAX_MESSAGE_CHARS], updated_at=utcnow())
                .returning(Job)
                .execution_options(synchronize_session=False, populate_existing=True)
            )
            job = session.scalars(stmt).one_or_none()
            if job is None:
                # No longer running: somebody canceled it, or the row is gone. Either way, stop.
                return True
            session.add(JobEvent(job_id=job.id, status=job.status, progress=percent, message=job.message))
            self._commit_and_publish(session, job)
            return job.cancel_requested

    def succeed(self, job_id: str, attempt: int, result: Any, message: str = "Done") -> Job | None:
        with self._sessions() as session:
            now = utcnow()
            job = transition(
                session,
                job_id,
                Status.SUCCEEDED,
                sources=[Status.RUNNING],
                now=now,
                progress=100,
                message=message[:MAX_MESSAGE_CHARS],
                result=result,
                error=None,
                finished_at=now,
            )
            self._close_attempt(session, job_id, attempt, "succeeded", now)
            return self._commit_and_publish(session, job)

    def fail_attempt(self, job_id: str, attempt: int, exc: BaseException, policy: RetryPolicy) -> Job | None:
        """Record the error; ``retrying`` with the next attempt's due time, or ``failed`` (dead letter)."""
        error = {"type": type(exc).__name__, "message": str(exc)[:MAX_MESSAGE_CHARS]}
        trace = "".join(tb_module.format_exception(exc))
        with self._sessions() as session:
            now = utcnow()
            self._close_attempt(session, job_id, attempt, "failed", now, error, trace)
            if policy.decide(exc, attempt) == "retry":
                due = now + timedelta(seconds=policy.delay_s(attempt, exc))
                job = transition(
                    session,
                    job_id,
                    Status.RETRYING,
                    sources=[Status.RUNNING],
                    now=now,
                    error=error,
                    scheduled_at=due,
                    message=f"Attempt {attempt} failed ({error['type']}); retrying at {due:%H:%M:%S} UTC",
                )
            else:
                job = transition(
                    session,
                    job_id,
                    Status.FAILED,
                    sources=[Status.RUNNING],
                    now=now,
                    error=error,
                    finished_at=now,
                    message=f"Failed: {error['type']}: {error['message']}"[:MAX_MESSAGE_CHARS],
                )
            return self._commit_and_publish(session, job)

    def mark_canceled(self, job_id: str, attempt: int | None = None) -> Job | None:
        with self._sessions() as session:
            now = utcnow()
            job = transition(
                session,
                job_id,
                Status.CANCELED,
                sources=[Status.RUNNING, *sources_of(Status.CANCELED)],
                now=now,
                finished_at=now,
                message="Canceled",
            )
            if attempt is not None:
                self._close_attempt(session, job_id, attempt, "canceled", now)
            return self._commit_and_publish(session, job)

    def requeue(self, job_id: str, attempt: int, reason: str) -> Job | None:
        """running -> queued (the worker is stopping); the attempt does not count against the job."""
        with self._sessions() as session:
            now = utcnow()
            job = transition(
                session,
                job_id,
                Status.QUEUED,
                sources=[Status.RUNNING],
                now=now,
                attempts=Job.attempts - 1,
                message=reason,
            )
            self._close_attempt(session, job_id, attempt, "requeued", now)
            self._commit_and_publish(session, job)
        if job is not None:
            self.dispatcher.send(job.id, job.type, job.queue)
        return job

    def release_due(self, now: datetime | None = None, batch: int = 200) -> int:
        """scheduled/retrying jobs whose time has come -> queued, and send them. Returns how many."""
        now = now or utcnow()
        due_from = [Status.SCHEDULED.value, Status.RETRYING.value]
        with self._sessions() as session:
            ids = session.scalars(
                select(Job.id)
                .where(Job.status.in_(due_from), Job.scheduled_at <= now)
                .order_by(Job.scheduled_at)
                .limit(batch)
            ).all()
        released = 0
        for job_id in ids:
            with self._sessions() as session:
                job = transition(
                    session,
                    job_id,
                    Status.QUEUED,
                    sources=[Status.SCHEDULED, Status.RETRYING],
                    message="Queued",
                )
                self._commit_and_publish(session, job)
            if job is not None:  # another releaser may have won the row
                self.dispatcher.send(job.id, job.type, job.queue)
                released += 1
        return released

    @staticmethod
    def _close_attempt(
        session: Session,
        job_id: str,
        number: int,
        outcome: str,
        now: datetime,
        error: dict[str, str] | None = None,
        trace: str | None = None,
    ) -> None:
        session.execute(
            update(JobAttempt)
            .where(JobAttempt.job_id == job_id, JobAttempt.number == number)
            .values(
                finished_at=now,
                outcome=outcome,
                error_type=error["type"] if error else None,
                error_message=error["message"] if error else None,
                traceback=trace,
            )
        )
