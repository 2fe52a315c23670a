"""Binds every registered job type to a Celery task of the same name (loaded by the worker only)."""

from __future__ import annotations

from collections.abc import Callable

from celery import Task

from shared.jobtypes import JobType
from workers import (
    job_logging,  # noqa: F401  (logs duration and peak memory of every job)
    maintenance,  # noqa: F401  (connects the worker signals)
    recurring_jobs,  # noqa: F401  (the task beat sends: questboard.recurring)
)
from workers.celery_app import celery_app
from workers.jobs import REGISTRY
from workers.outcomes import JobFailed, report
from workers.runtime import run_job


def _bind(spec: JobType) -> Callable[..., None]:
    def run(task: Task, job_id: str) -> None:
        outcome = run_job(spec, job_id, task.request.hostname or "worker")
        report(task, job_id, outcome)  # committed already; the task ends as the job did (Flower's state)

    run.__name__ = spec.name.replace(".", "_")
    run.__doc__ = spec.description
    return run


TASKS = {
    # throws: a failed job is an expected outcome, logged by Celery at INFO without a traceback (the
    # job keeps its traceback).
    name: celery_app.task(name=name, bind=True, ignore_result=True, acks_late=True, throws=(JobFailed,))(
        _bind(spec)
    )
    for name, spec in REGISTRY.items()
}
