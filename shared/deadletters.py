"""The dead-letter set: ``failed`` jobs not yet discarded. Operators retry or discard them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from shared.db import get_sessionmaker
from shared.dispatch import Dispatcher
from shared.errors import Conflict, NotFound
from shared.jobtypes import JobType
from shared.models import Job, JobAttempt, utcnow
from shared.publisher import Publisher
from shared.serialize import iso, job_to_dict
from shared.states import Status
from shared.transitions import transition


def attempt_to_dict(attempt: JobAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "worker": attempt.worker,
        "started_at": iso(attempt.started_at),
        "finished_at": iso(attempt.finished_at),
        "outcome": attempt.outcome,
        "error_type": attempt.error_type,
        "error_message": attempt.error_message,
        "traceback": attempt.traceback,
    }


class DeadLetters:
    def __init__(
        self,
        database_url: str,
        registry: dict[str, JobType],
        publisher: Publisher,
        dispatcher: Dispatcher,
    ) -> None:
        self._sessions = get_sessionmaker(database_url)
        self.registry = registry
        self.publisher = publisher
        self.dispatcher = dispatcher

    def _dead(self, job_type: str | None = None) -> Any:
        stmt = select(Job).where(Job.status == Status.FAILED.value, Job.discarded_at.is_(None))
        return stmt.where(Job.type == job_type) if job_type else stmt

    def list(self, job_type: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Dead-letter jobs, newest first, each with every attempt's error and traceback."""
        with self._sessions() as session:
            jobs = list(session.scalars(self._dead(job_type).order_by(Job.finished_at.desc()).limit(limit)))
            attempts: dict[str, list[dict[str, Any]]] = {j.id: [] for j in jobs}
            if jobs:
                rows = session.scalars(
                    select(JobAttempt)
                    .where(JobAttempt.job_id.in_(list(attempts)))
                    .order_by(JobAttempt.job_id, JobAttempt.number)
                )
                for row in rows:
                    attempts[row.job_id].append(attempt_to_dict(row))
            return [{**job_to_dict(j), "attempts_history": attempts[j.id]} for j in jobs]

    def count(self) -> int:
        with self._sessions() as session:
            return len(session.scalars(self._dead().with_only_columns(Job.id)).all())

    def retry(self, job_id: str) -> dict[str, Any]:
        """failed -> queued with a fresh budget of attempts; the history of earlier attempts stays."""
        with self._sessions() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise NotFound("No such job.")
            if job.status != Status.FAILED.value or job.discarded_at is not None:
                raise Conflict(
                    f"Only failed jobs in the dead-letter set can be retried (this one is {job.status})."
                )
            spec = self.registry.get(job.type)
            budget = spec.retry.max_attempts if spec else 1
            updated = transition(
                session,
                job_id,
                Status.QUEUED,
                sources=[Status.FAILED],
                max_attempts=job.attempts + budget,
                finished_at=None,
                error=None,
                progress=0,
                cancel_requested=False,
                message="Retried by an operator",
            )
            if updated is None:
                raise Conflict("The job changed meanwhile; look again.")
            session.commit()
            data = job_to_dict(updated)
        self.publisher.job_update(data, updated.user_id)
        self.dispatcher.send(updated.id, updated.type, updated.queue)
        return data

    def discard(self, job_id: str) -> dict[str, Any]:
        """Take a failed job out of the dead-letter set (it stays ``failed`` in the history)."""
        with self._sessions() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise NotFound("No such job.")
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == Status.FAILED.value, Job.discarded_at.is_(None))
                .values(discarded_at=utcnow(), message="Discarded by an operator")
            )
            if result.rowcount != 1:
                raise Conflict(
                    f"Only failed jobs in the dead-letter set can be discarded (this one is {job.status})."
                )
            session.commit()
            session.refresh(job)
            return job_to_dict(job)

    def _ids(self, job_type: str) -> list[str]:
        with self._sessions() as session:
            return list(session.scalars(self._dead(job_type).with_only_columns(Job.id)))

    def retry_all(self, job_type: str) -> int:
        count = 0
        for job_id in self._ids(job_type):
            try:
                self.retry(job_id)
                count += 1
            except Conflict:
                continue  # retried or discarded concurrently
        return count

    def discard_all(self, job_type: str) -> int:
        count = 0
        for job_id in self._ids(job_type):
            try:
                self.discard(job_id)
                count += 1
            except Conflict:
                continue
        return count
