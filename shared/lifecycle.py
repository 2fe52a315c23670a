"""Named transitions of a job, each one conditional UPDATE plus its event, published after commit.

``claim`` is atomic: a message delivered twice, or a job canceled while its message waited, runs the body
at most once, because only one UPDATE can move the row from ``queued`` to ``running``.
"""

from __future__ import annotations

import logging
import traceback as tb_module
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared import fairshare, slots
from shared.db import get_engine, get_sessionmaker
from shared.dispatch import Dispatcher
from shared.hotpath import HotPath
from shared.jobtypes import RetryPolicy
from shared.models import Job, JobAttempt, utcnow
from shared.progressbuffer import ProgressBuffer
from shared.publisher import Publisher
from shared.releasing import Releasing
from shared.serialize import job_to_dict
from shared.states import Status
from shared.transitions import JOBS, MAX_MESSAGE_CHARS, record_with_event, safe_send, transition

log = logging.getLogger("questboard.lifecycle")

# A revoke cancels these at once (a running job: see ``Lifecycle.revoke``).
REVOCABLE = (Status.SCHEDULED, Status.QUEUED, Status.BLOCKED, Status.RETRYING)
REVOKED_MESSAGE = "Canceled through Celery (revoke)"

__all__ = ["Lifecycle", "MAX_MESSAGE_CHARS", "safe_send", "transition"]


class Lifecycle(Releasing):
    """The transitions workers and the maintenance loop apply, with publishing and dispatch."""

    def __init__(self, database_url: str, publisher: Publisher, dispatcher: Dispatcher) -> None:
        self._sessions = get_sessionmaker(database_url)
        self._fast = HotPath(get_engine(database_url), database_url)
        self.publisher = publisher
        self.dispatcher = dispatcher
        self._attempts: dict[str, int] = {}  # job id -> the attempt this process claimed (fencing)
        self._progress = ProgressBuffer(
            self._write_progress,
            lambda jobs, uid: self.publisher.job_updates(jobs, uid),
            self._fast.should_stop,
        )

    def _commit_and_publish(self, session: Session, job: Job | None) -> Job | None:
        session.commit()
        if job is not None:
            self.publisher.job_update(job_to_dict(job), job.user_id)
        return job

    def _publish_row(self, job: Job) -> None:
        self.publisher.job_update(job_to_dict(job), job.user_id)

    def _write_progress(
        self, job_id: str, percent: int, message: str, now: datetime, before: list[dict[str, Any]]
    ) -> Job | None:
        attempt = self._attempts.get(job_id)
        if attempt is None:  # not claimed by this process: no attempt of ours to write for
            return None
        return self._fast.progress(job_id, attempt, percent, message, now, before)

    def send(self, job: Job) -> bool:
        return fairshare.send(self._sessions, self.dispatcher, job)  # fair share: the gate (shared.fairshare)

    def refill(self, queue: str) -> int:
        """Fair share: send the queue's next held jobs, in turns (after a start; shared.fairshare)."""
        return fairshare.refill(self._sessions, self.dispatcher, queue)

    # ----- starting ------------------------------------------------------------------------------

    def claim(
        self, job_id: str, worker: str, pid: int | None = None, started_at: datetime | None = None
    ) -> Job | None:
        """queued -> running, counting the attempt; None when it is not this worker's to run.

        A job whose concurrency key has no free slot goes to ``blocked`` instead and starts when a slot
        frees (see ``wake``).
        """
        now = started_at or utcnow()
        job = self._fast.claim(job_id, worker, pid, now)
        if job is not None:
            self._attempts[job.id] = job.attempts
            self._progress.started(job)  # publishes it with the job's next write (see ProgressBuffer)
            return job
        job = self._claim_general(job_id, worker, pid, started_at)
        if job is not None:
            self._attempts[job.id] = job.attempts
            self._progress.started(job, published=True)
        return job

    def _claim_general(
        self, job_id: str, worker: str, pid: int | None, started_at: datetime | None
    ) -> Job | None:
        """Not claimable, or a concurrency key: the general path decides; a slot race is retried."""
        for _ in range(3):
            try:
                return self._claim_once(job_id, worker, pid, started_at)
            except IntegrityError:
                continue
        return self._block(job_id)

    def _claim_once(
        self, job_id: str, worker: str, pid: int | None, started_at: datetime | None
    ) -> Job | None:
        with self._sessions() as session:
            now = started_at or utcnow()
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
                worker_pid=pid,
                message="Started",
            )
            if job is None:
                session.rollback()
                return None
            if job.concurrency_key is not None and not slots.acquire(session, job):
                session.rollback()
                return self._block(job_id)
            session.add(JobAttempt(job_id=job_id, number=job.attempts, worker=worker, started_at=now))
            return self._commit_and_publish(session, job)

    def _block(self, job_id: str) -> None:
        with self._sessions() as session:
            job = transition(
                session, job_id, Status.BLOCKED, sources=[Status.QUEUED], message="Waiting for a free slot"
            )
            self._commit_and_publish(session, job)
        return None

    def is_queued(self, job_id: str) -> bool:
        with self._sessions() as session:
            return session.scalar(select(Job.status).where(Job.id == job_id)) == Status.QUEUED.value

    def defer(self, job_id: str, delay_s: float, message: str) -> Job | None:
        """Leave a queued job queued and send it again after ``delay_s`` (a rate limit said wait).

        No attempt is used: the body did not start.
        """
        with self._sessions() as session:
            now = utcnow()
            job = record_with_event(
                session,
                update(JOBS)
                .where(JOBS.c.id == job_id, JOBS.c.status == Status.QUEUED.value)
                .values(
                    needs_dispatch=True,
                    scheduled_at=now + timedelta(seconds=delay_s),
                    message=message[:MAX_MESSAGE_CHARS],
                    updated_at=now,
                )
                .returning(*JOBS.c),
            )
            return self._commit_and_publish(session, job)

    def progress(self, job_id: str, percent: int, message: str) -> bool:
        """Record progress of a running job; True when the job should stop (cancel asked, or not running)."""
        percent = max(0, min(100, int(percent)))
        return self._progress.report(job_id, percent, message[:MAX_MESSAGE_CHARS], utcnow())

    # ----- leaving running -----------------------------------------------------------------------

    def _leave_running(
        self, session: Session, job: Job | None, attempt: int, outcome: str, now: datetime, **error: Any
    ) -> str | None:
        """Close the attempt and free the job's slot; returns the key whose next job may start."""
        if job is None:
            return None
        self._close_attempt(session, job.id, attempt, outcome, now, **error)
        if job.concurrency_key is not None:
            slots.release(session, job.id)
            return job.concurrency_key
        return None

    def _after_leaving(self, job: Job | None, key: str | None) -> Job | None:
        if key is not None:
            self.wake(key)
        return job

    def succeed(self, job_id: str, attempt: int, result: Any, message: str = "Done") -> Job | None:
        self._attempts.pop(job_id, None)
        with self._progress.lock:
            events, updates, user_id = self._progress.take(job_id)
            fast = self._fast.succeed(job_id, attempt, result, message, utcnow(), events)
            if fast is None:
                self._fast.add_events(events)
        if fast is not None:
            self.publisher.job_updates([*updates, job_to_dict(fast)], fast.user_id)
            return fast
        if updates:
            self.publisher.job_updates(updates, user_id)
        with self._sessions() as session:  # a concurrency key (or no longer running): the general path
            now = utcnow()
            job = transition(
                session,
                job_id,
                Status.SUCCEEDED,
                sources=[Status.RUNNING],
                now=now,
                where=[Job.attempts == attempt],
                progress=100,
                message=message[:MAX_MESSAGE_CHARS],
                result=result,
                error=None,
                finished_at=now,
            )
            key = self._leave_running(session, job, attempt, "succeeded", now)
            self._commit_and_publish(session, job)
        return self._after_leaving(job, key)

    def fail_attempt(self, job_id: str, attempt: int, exc: BaseException, policy: RetryPolicy) -> Job | None:
        """Record the error; ``retrying`` with the next attempt's due time, or ``failed`` (dead letter)."""
        error = {"type": type(exc).__name__, "message": str(exc)[:MAX_MESSAGE_CHARS]}
        trace = "".join(tb_module.format_exception(exc))
        self._progress.flush(job_id)
        self._attempts.pop(job_id, None)
        with self._sessions() as session:
            now = utcnow()
            current = session.get(Job, job_id)
            retry = policy.decide(exc, attempt) == "retry" and (
                current is None or attempt < current.max_attempts
            )
            if retry:
                due = now + timedelta(seconds=policy.delay_s(attempt, exc))
                job = transition(
                    session,
                    job_id,
                    Status.RETRYING,
                    sources=[Status.RUNNING],
                    now=now,
                    where=[Job.attempts == attempt],
                    error=error,
                    scheduled_at=due,
                    message=f"Attempt {attempt} failed ({error['type']}); next attempt at {due:%H:%M:%S} UTC",
                )
            else:
                job = transition(
                    session,
                    job_id,
                    Status.FAILED,
                    sources=[Status.RUNNING],
                    now=now,
                    where=[Job.attempts == attempt],
                    error=error,
                    finished_at=now,
                    message=f"Failed: {error['type']}: {error['message']}"[:MAX_MESSAGE_CHARS],
                )
            key = self._leave_running(session, job, attempt, "failed", now, error=error, trace=trace)
            self._commit_and_publish(session, job)
        return self._after_leaving(job, key)

    def mark_canceled(
        self,
        job_id: str,
        attempt: int | None = None,
        *,
        sources: Iterable[Status] = (Status.RUNNING,),
        message: str = "Canceled",
    ) -> Job | None:
        """-> canceled from one of ``sources`` (running by default), its open attempt closed, slot freed."""
        self._progress.flush(job_id)
        self._attempts.pop(job_id, None)
        with self._sessions() as session:
            now = utcnow()
            job = transition(
                session,
                job_id,
                Status.CANCELED,
                sources=sources,
                now=now,
                where=[Job.attempts == attempt] if attempt is not None else [],
                finished_at=now,
                message=message[:MAX_MESSAGE_CHARS],
            )
            key = self._leave_running(session, job, attempt or (job.attempts if job else 0), "canceled", now)
            self._commit_and_publish(session, job)
        return self._after_leaving(job, key)

    def request_cancel(self, job_id: str, message: str = "Cancel requested") -> Job | None:
        """Flag a running job to stop at its next progress point (the maintenance loop ends its process if
        it has not within ``CANCEL_GRACE_S``); an earlier request's time is kept."""
        with self._sessions() as session:
            now = utcnow()
            job = transition(
                session,
                job_id,
                Status.RUNNING,
                sources=[Status.RUNNING],
                now=now,
                where=[Job.cancel_requested.is_not(True)],
                cancel_requested=True,
                cancel_requested_at=now,
                message=message[:MAX_MESSAGE_CHARS],
            )
            return self._commit_and_publish(session, job)

    def revoke(self, job_id: str, process_ended: bool, how: str = "revoke") -> Job | None:
        """A Celery revoke of the job's task (its id is the job id): the job never runs again.

        Not started (scheduled, queued, blocked, retrying): canceled at once. Running: canceled at once
        when its process was ended (``process_ended``: a revoke with terminate), else asked to stop at its
        next progress point, as a user's cancel is. None when the job is finished or gone.
        """
        sources = [*REVOCABLE, Status.RUNNING] if process_ended else REVOCABLE
        job = self.mark_canceled(job_id, sources=sources, message=f"Canceled through Celery ({how})")
        if job is None and not process_ended:
            job = self.request_cancel(job_id, f"Cancel requested through Celery ({how})")
        return job

    def requeue(self, job_id: str, attempt: int, reason: str) -> Job | None:
        """running -> queued (the worker is stopping); the attempt does not count against the job."""
        job = self._back_to_queue(job_id, attempt, reason, "requeued")
        if job is not None:
            self.send(job)
        return job

    def postpone(self, job_id: str, attempt: int, delay_s: float, reason: str) -> Job | None:
        """running -> queued, sent again after ``delay_s`` (the body met a rate limit, ``Postponed``); the
        attempt does not count against the job."""
        now = utcnow()
        # needs_dispatch: the maintenance loop sends it once scheduled_at has passed.
        return self._back_to_queue(
            job_id,
            attempt,
            reason,
            "postponed",
            now=now,
            needs_dispatch=True,
            scheduled_at=now + timedelta(seconds=delay_s),
        )

    def _back_to_queue(
        self, job_id: str, attempt: int, reason: str, outcome: str, now: datetime | None = None, **values: Any
    ) -> Job | None:
        """running -> queued with the attempt given back (its row closed with ``outcome``)."""
        self._progress.flush(job_id)
        self._attempts.pop(job_id, None)
        with self._sessions() as session:
            now = now or utcnow()
            job = transition(
                session,
                job_id,
                Status.QUEUED,
                sources=[Status.RUNNING],
                now=now,
                where=[Job.attempts == attempt],
                attempts=Job.attempts - 1,
                message=reason[:MAX_MESSAGE_CHARS],
                **values,
            )
            key = self._leave_running(session, job, attempt, outcome, now)
            self._commit_and_publish(session, job)
        return self._after_leaving(job, key)

    def recover(
        self, job_id: str, worker: str, pid: int | None, reason: str, revoked: bool = False
    ) -> Job | None:
        """A running job whose process died: run it again, or fail it once its attempts are spent.

        The lost attempt counts, so a job that kills its worker every time ends ``failed`` instead of
        looping. Conditional on the same worker and pid still holding it, so a re-claimed job is left alone.
        A job whose cancel was requested, or whose Celery task was revoked (``revoked``: its next message
        would be discarded), ends ``canceled`` instead of being requeued.
        """
        with self._sessions() as session:
            current = session.get(Job, job_id)
            if current is None or current.status != Status.RUNNING.value:
                return None
            now = utcnow()
            guard = [
                Job.worker == worker,
                Job.worker_pid == pid if pid is not None else Job.worker_pid.is_(None),
            ]
            error = {"type": "WorkerLost", "message": reason}
            stop = bool(current.cancel_requested) or revoked
            if current.attempts < current.max_attempts and not stop:
                job = transition(
                    session,
                    job_id,
                    Status.QUEUED,
                    sources=[Status.RUNNING],
                    now=now,
                    where=guard,
                    error=error,
                    message=f"Requeued: {reason}",
                )
            elif stop:
                job = transition(
                    session,
                    job_id,
                    Status.CANCELED,
                    sources=[Status.RUNNING],
                    now=now,
                    where=guard,
                    finished_at=now,
                    message=REVOKED_MESSAGE if revoked else "Canceled",
                )
            else:
                job = transition(
                    session,
                    job_id,
                    Status.FAILED,
                    sources=[Status.RUNNING],
                    now=now,
                    where=guard,
                    error=error,
                    finished_at=now,
                    message=f"Failed: {reason}",
                )
            if revoked:  # Celery ended the process on purpose: the attempt was canceled, not lost
                key = self._leave_running(session, job, current.attempts, "canceled", now)
            else:
                key = self._leave_running(
                    session, job, current.attempts, "lost", now, error=error, trace=None
                )
            self._commit_and_publish(session, job)
        if job is not None and job.status == Status.QUEUED.value:
            self.send(job)
        if job is not None:
            log.warning("recovered job from a lost worker", extra={"job_id": job_id, "status": job.status})
        return self._after_leaving(job, key)

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
            .where(JobAttempt.job_id == job_id, JobAttempt.number == number, JobAttempt.finished_at.is_(None))
            .values(
                finished_at=now,
                outcome=outcome,
                error_type=error["type"] if error else None,
                error_message=error["message"] if error else None,
                traceback=trace,
            )
        )
