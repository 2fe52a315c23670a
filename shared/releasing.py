"""Releasing waiting jobs: scheduled and retrying ones when due, blocked ones when a slot frees.

A mixin of ``Lifecycle``: each release is the same conditional UPDATE as every other transition, so
several workers releasing at once move each job once.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from shared import slots
from shared.models import Job, utcnow
from shared.states import Status
from shared.transitions import transition

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


class Releasing:
    _sessions: sessionmaker[Session]

    def send(self, job: Job) -> bool:  # provided by Lifecycle
        raise NotImplementedError

    def _commit_and_publish(self, session: Session, job: Job | None) -> Job | None:  # provided by Lifecycle
        raise NotImplementedError

    def wake(self, key: str) -> int:
        """Move blocked jobs of ``key`` (oldest first) to queued while the key has room for them.

        Room = limit - slots held - jobs already queued for the key (they will take a slot when claimed).
        """
        woken = 0
        while True:
            with self._sessions() as session:
                candidate = session.scalars(
                    select(Job)
                    .where(Job.status == Status.BLOCKED.value, Job.concurrency_key == key)
                    .order_by(Job.created_at)
                    .limit(1)
                ).first()
                if candidate is None:
                    return woken
                queued = (
                    session.scalar(
                        select(func.count())
                        .select_from(Job)
                        .where(Job.status == Status.QUEUED.value, Job.concurrency_key == key)
                    )
                    or 0
                )
                if slots.held_count(session, key) + queued >= (candidate.concurrency_limit or 1):
                    return woken
                job = transition(
                    session,
                    candidate.id,
                    Status.QUEUED,
                    sources=[Status.BLOCKED],
                    message="Queued (slot free)",
                )
                self._commit_and_publish(session, job)
            if job is not None:
                self.send(job)
                woken += 1

    def wake_all(self) -> int:
        """The sweep behind ``wake``: every key that has blocked jobs (covers a lost wake-up)."""
        with self._sessions() as session:
            keys = session.scalars(
                select(Job.concurrency_key).where(Job.status == Status.BLOCKED.value).distinct()
            ).all()
        return sum(self.wake(key) for key in keys if key is not None)

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
                    # Still due: a debounced repeat may have moved the run time since the select above.
                    where=[Job.scheduled_at <= now],
                    message="Queued",
                )
                self._commit_and_publish(session, job)
            if job is not None:  # another releaser may have won the row
                self.send(job)
                released += 1
        return released
