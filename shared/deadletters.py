"""The dead-letter set: ``failed`` jobs not yet discarded. Operators retry or discard them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared.db import get_sessionmaker
from shared.dispatch import Dispatcher
from shared.errors import Conflict, NotFound
from shared.jobstate import Machine
from shared.jobtypes import JobType
from shared.models import Job, JobAttempt
from shared.publisher import Publisher
from shared.serialize import iso, job_to_dict
from shared.states import Status


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
        self.machine = Machine(database_url, publisher, dispatcher)

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

    def _dead_letter(self, job_id: str, action: str) -> Job:
        with self._sessions() as session:
            job = session.get(Job, job_id)
        if job is None:
            raise NotFound("No such job.")
        if job.status != Status.FAILED.value or job.discarded_at is not None:
            raise Conflict(
                f"Only failed jobs in the dead-letter set can be {action} (this one is {job.status})."
            )
        return job

    def retry(self, job_id: str) -> dict[str, Any]:
        """failed -> queued with a fresh budget of attempts; the history of earlier attempts stays."""
        job = self._dead_letter(job_id, "retried")
        spec = self.registry.get(job.type)
        updated = self.machine.retry_dead(job_id, spec.retry.max_attempts if spec else 1)
        if updated is None:
            raise Conflict("The job changed meanwhile; look again.")
        return job_to_dict(updated)

    def discard(self, job_id: str) -> dict[str, Any]:
        """Take a failed job out of the dead-letter set (it stays ``failed`` in the history)."""
        self._dead_letter(job_id, "discarded")
        updated = self.machine.discard_dead(job_id)
        if updated is None:
            raise Conflict("The job changed meanwhile; look again.")
        return job_to_dict(updated)

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
