# ruff: noqa: E501
"""Prototypes of P1 changes, applied by monkeypatching inside benchmark workers only.

Loaded with ``celery worker --include benchmarks.prototypes``; ``BENCH_PROTO`` names the prototypes to
apply (``+``-separated). No project file is edited: each prototype replaces a function in the worker's
memory at import time (before the pool forks), so the gain measured is that of the patch in ``what``.
"""

from __future__ import annotations

import os
import time
from typing import Any

PROTOTYPES: dict[str, dict[str, Any]] = {
    "no-publish": {
        "what": "SocketIOPublisher.job_update does nothing (upper bound of 'skip the publish when nobody listens')",
    },
    "no-task-events": {
        "what": "task.send_events = False for every task (no task-received/started/succeeded events: "
        "worker_send_task_events=False in celeryconfig; Flower's live task view goes)",
    },
    "no-reserved-set": {
        "what": "the task_received handler (SADD questboard:reserved:<worker> in the consumer loop) is disconnected",
    },
    "coalesce-progress": {
        "what": "Lifecycle.progress writes the row+event at most once per second per job (publish-only in "
        "between, from the claimed job's dict); the final state comes with succeed",
    },
    "core-sql": {
        "what": "transition() and Lifecycle.progress() use Core UPDATE..RETURNING on the table and a Core "
        "INSERT for the event instead of ORM-enabled UPDATE..RETURNING(Job) + session.add",
    },
    "threads-pool": {
        "what": "celery -P threads (2 threads) instead of prefork -c 2",
        "args": ["--pool", "threads"],
    },
    "all-but-publish": {
        "what": "no-task-events + no-reserved-set + coalesce-progress + core-sql together",
    },
}

NAME = os.environ.get("BENCH_PROTO", "")


class Row:
    """A job row from Core RETURNING, with the attributes job_to_dict and the lifecycle read."""

    def __init__(self, mapping: Any) -> None:
        self.__dict__.update(mapping)


def _no_publish() -> None:
    from shared import publisher

    publisher.SocketIOPublisher.job_update = lambda self, job, user_id: None  # type: ignore[method-assign]


def _no_task_events() -> None:
    import workers.tasks  # noqa: F401  (registers the tasks)
    from workers.celery_app import celery_app

    celery_app.conf.worker_send_task_events = False
    for task in celery_app.tasks.values():
        task.send_events = False


def _no_reserved_set() -> None:
    from celery.signals import task_received

    from workers import maintenance

    task_received.disconnect(maintenance._remember_reserved)


def _coalesce_progress() -> None:
    from shared import lifecycle
    from shared.serialize import job_to_dict

    cls = lifecycle.Lifecycle
    original_claim, original_progress = cls._claim_once, cls.progress
    cache: dict[str, tuple[float, dict[str, Any], int]] = {}

    def claim(self: Any, job_id: str, *args: Any, **kwargs: Any) -> Any:
        job = original_claim(self, job_id, *args, **kwargs)
        if job is not None:
            cache.clear()
            cache[job_id] = (time.monotonic(), job_to_dict(job), job.user_id)
        return job

    def progress(self: Any, job_id: str, percent: int, message: str) -> bool:
        entry = cache.get(job_id)
        if entry is not None and time.monotonic() - entry[0] < 1.0:
            data = {**entry[1], "progress": max(0, min(100, int(percent))), "message": message}
            self.publisher.job_update(data, entry[2])
            return False
        stop = original_progress(self, job_id, percent, message)
        if entry is not None:
            cache[job_id] = (time.monotonic(), entry[1], entry[2])
        return stop

    cls._claim_once = claim
    cls.progress = progress


def _core_sql() -> None:
    from sqlalchemy import insert, update

    from shared import lifecycle
    from shared.lifecycle import MAX_MESSAGE_CHARS
    from shared.models import Job, JobEvent, utcnow
    from shared.states import Status, sources_of

    jobs, events = Job.__table__, JobEvent.__table__

    def transition(
        session: Any,
        job_id: str,
        target: Any,
        *,
        sources: Any = None,
        now: Any = None,
        where: Any = (),
        **values: Any,
    ) -> Any:
        allowed = [s.value for s in (sources if sources is not None else sources_of(target))]
        now = now or utcnow()
        stmt = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.in_(allowed), *where)
            .values(status=target.value, updated_at=now, **values)
            .returning(*jobs.c)
        )
        row = session.execute(stmt).mappings().one_or_none()
        if row is None:
            return None
        job = Row(row)
        session.execute(
            insert(events).values(
                job_id=job.id, status=job.status, progress=job.progress, message=job.message, created_at=now
            )
        )
        return job

    def progress(self: Any, job_id: str, percent: int, message: str) -> bool:
        percent = max(0, min(100, int(percent)))
        with self._sessions() as session:
            now = utcnow()
            row = (
                session.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status == Status.RUNNING.value)
                    .values(progress=percent, message=message[:MAX_MESSAGE_CHARS], updated_at=now)
                    .returning(*jobs.c)
                )
                .mappings()
                .one_or_none()
            )
            if row is None:
                return True
            job = Row(row)
            session.execute(
                insert(events).values(
                    job_id=job.id, status=job.status, progress=percent, message=job.message, created_at=now
                )
            )
            self._commit_and_publish(session, job)
            return bool(job.cancel_requested)

    lifecycle.transition = transition
    lifecycle.Lifecycle.progress = progress


APPLY = {
    "no-publish": [_no_publish],
    "no-task-events": [_no_task_events],
    "no-reserved-set": [_no_reserved_set],
    "coalesce-progress": [_coalesce_progress],
    "core-sql": [_core_sql],
    "threads-pool": [],
    "all-but-publish": [_no_task_events, _no_reserved_set, _core_sql, _coalesce_progress],
}

for _name in filter(None, NAME.split("+")):
    for _fn in APPLY.get(_name, []):
        _fn()
