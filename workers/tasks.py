"""Binds every registered job type to a Celery task of the same name (loaded by the worker only)."""

from __future__ import annotations

from collections.abc import Callable

from celery import Task

from questboard.app import registry
from shared import defaults
from shared.jobtypes import JobType
from workers import (
    job_logging,  # noqa: F401  (logs duration and peak memory of every job)
    maintenance,  # noqa: F401  (connects the worker signals)
    recurring_jobs,  # noqa: F401  (the task beat sends: questboard.recurring)
    revokes,  # noqa: F401  (a Celery revoke of a job's task cancels the job)
)
from workers.celery_app import celery_app
from workers.outcomes import JobFailed, report
from workers.runtime import run_job


def _bind(spec: JobType) -> Callable[..., None]:
    def run(task: Task, job_id: str) -> None:
        outcome = run_job(spec, job_id, task.request.hostname or "worker")
        report(task, job_id, outcome)  # committed already; the task ends as the job did (Flower's state)

    run.__name__ = spec.name.replace(".", "_")
    run.__doc__ = spec.description
    return run


def hard_limit_s(spec: JobType) -> float:
    """Celery's hard time limit for the type: the pool process is ended this long after the start."""
    return spec.time_limit_seconds + defaults.TIME_LIMIT_HARD_GRACE_S


# Celery's own time limits (prefork pool): at ``time_limit_seconds`` the soft limit raises
# SoftTimeLimitExceeded in the body (recorded as TimeLimitExceeded by workers.runtime); a body that does
# not stop (stuck in a C call, or swallowing the exception) has its pool process ended at the hard limit,
# and the maintenance loop records that attempt as TimeLimitExceeded (workers.timeouts).
TASKS = {
    # throws: a failed job is an expected outcome, logged by Celery at INFO without a traceback (the
    # job keeps its traceback).
    name: celery_app.task(
        name=name,
        bind=True,
        ignore_result=True,
        acks_late=True,
        throws=(JobFailed,),
        soft_time_limit=spec.time_limit_seconds,
        time_limit=hard_limit_s(spec),
    )(_bind(spec))
    for name, spec in registry().items()
}
