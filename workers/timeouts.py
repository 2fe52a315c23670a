"""Time limits the worker's main process enforces (the part Celery's own limits cannot record).

Celery's soft limit (``workers.tasks``) stops a body that runs Python code; the body's own exception
handler records that attempt. A body stuck in a C call ignores it, so Celery's hard limit ends the pool
process: nothing in that process can record anything then. The maintenance loop does, here: a job whose
pool process is gone after running past its limit failed with ``TimeLimitExceeded`` (not ``WorkerLost``),
and is retried or failed by its type's policy. As a fallback (a pool without Celery's limits, a kill that
did not happen) a body still running ``TIME_LIMIT_ENFORCE_GRACE_S`` past the hard limit is ended here.
"""

from __future__ import annotations

import logging
import os
import signal
from datetime import timedelta

from shared import defaults
from shared.errors import TimeLimitExceeded
from shared.jobtypes import JobType
from shared.lifecycle import Lifecycle
from shared.models import Job, utcnow

log = logging.getLogger("questboard.maintenance")


def spec_of(job: Job) -> JobType | None:
    """The job's type in this worker's registry (its time limit with QUESTBOARD_TIME_LIMITS applied)."""
    from questboard.app import registry

    return registry().get(job.type)


def past_limit(job: Job, extra_s: float = 0.0) -> bool:
    """True once the job's current attempt has run longer than its type's limit (plus ``extra_s``)."""
    spec = spec_of(job)
    if spec is None or job.started_at is None:
        return False
    return utcnow() - job.started_at >= timedelta(seconds=spec.time_limit_seconds + extra_s)


def record_time_limit(lifecycle: Lifecycle, job: Job) -> Job | None:
    """Close the running attempt as failed with ``TimeLimitExceeded``; retried or failed by the policy."""
    spec = spec_of(job)
    if spec is None:
        return None
    exc = TimeLimitExceeded(
        f"the attempt ran past the time limit of {spec.time_limit_seconds} s and was stopped"
    )
    outcome = lifecycle.fail_attempt(job.id, job.attempts, exc, spec.retry)
    if outcome is not None:
        log.warning(
            "job stopped at its time limit",
            extra={"job_id": job.id, "job_type": job.type, "status": outcome.status, "pid": job.worker_pid},
        )
    return outcome


def enforce(lifecycle: Lifecycle, jobs: list[Job]) -> None:
    """End running jobs (of this worker) well past Celery's hard limit, recording them first."""
    extra = defaults.TIME_LIMIT_HARD_GRACE_S + defaults.TIME_LIMIT_ENFORCE_GRACE_S
    newest: dict[int, Job] = {}
    for job in jobs:  # a process that moved on to another job keeps running that one
        if job.worker_pid and job.started_at:
            seen = newest.get(job.worker_pid)
            if seen is None or (seen.started_at and job.started_at > seen.started_at):
                newest[job.worker_pid] = job
    for job in jobs:
        if not job.worker_pid or not past_limit(job, extra):
            continue
        if record_time_limit(lifecycle, job) is not None and newest.get(job.worker_pid) is job:
            try:
                os.kill(job.worker_pid, signal.SIGKILL)  # the pool starts a fresh process
            except ProcessLookupError:
                pass
