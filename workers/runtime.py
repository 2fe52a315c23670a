"""Runs one job body inside a Celery task: claim, perform, then succeed, retry, fail or cancel.

Bodies never see Celery. Every outcome is written to the job row before the message is acknowledged
(acks_late), so a worker that dies mid-job leaves the message to be redelivered.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from celery.exceptions import Reject, SoftTimeLimitExceeded
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from questboard import app as composition
from shared import hooks, ratelimits
from shared.db import session_scope
from shared.errors import JobCanceled, PermanentError, Postponed, TimeLimitExceeded, WorkerRecycling
from shared.jobtypes import JobType
from shared.lifecycle import Lifecycle
from shared.models import utcnow
from shared.settings import Settings, get_settings
from workers import dbwatch
from workers.outcomes import SKIPPED, Outcome

log = logging.getLogger("questboard.worker")


def _rate_allows(spec: JobType, job_id: str) -> bool:
    """Take a start from the type's rate limit; when none is left, defer the job (no attempt used)."""
    assert spec.rate_limit is not None
    if not lifecycle().is_queued(job_id):
        return True  # the claim will skip it; no start is taken for a job that cannot run
    wait_s = ratelimits.limiter(get_settings().redis_url).try_start(spec.name, spec.rate_limit)
    if wait_s is None:
        return True
    wait_s += ratelimits.RETRY_MARGIN_S
    due = utcnow() + timedelta(seconds=wait_s)
    lifecycle().defer(job_id, wait_s, f"Rate-limited ({spec.rate_limit}); next try at {due:%H:%M:%S} UTC")
    log.info("job rate-limited", extra={"job_id": job_id, "job_type": spec.name, "wait_s": round(wait_s, 3)})
    return False


def lifecycle() -> Lifecycle:
    """This process's lifecycle, from the composition root (built on first use, after the pool forks)."""
    return composition.current().lifecycle


class RunContext:
    """The ``JobContext`` a body receives."""

    def __init__(self, job_id: str, user_id: int, attempt: int, settings: Settings) -> None:
        self.job_id = job_id
        self.user_id = user_id
        self.attempt = attempt
        self.settings = settings
        self.last_percent = 0
        self.last_message = ""

    def progress(self, percent: int, message: str = "") -> None:
        self.last_percent, self.last_message = percent, message
        if lifecycle().progress(self.job_id, percent, message):
            raise JobCanceled("cancel requested")

    def add_steps(self, steps: list[Any]) -> list[dict[str, Any]]:
        """Add steps to this job's workflow (docs/writing-jobs.md); ``after`` may name this step."""
        from workers.workflow_steps import add_steps  # built on the job service: after the fork

        return add_steps(self.job_id, steps)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.settings.resolved_database_url) as session:
            yield session


def run_job(spec: JobType, job_id: str, worker: str) -> Outcome:
    """Run the job once if this worker wins the claim; record the outcome either way and return it (the
    task reports it to Celery: workers.outcomes)."""
    lc = lifecycle()
    started_at = utcnow()  # taken before the rate-limit check: see shared.ratelimits
    if dbwatch.unreachable_here():  # a claim would only wait for its connect timeout to fail
        log.warning(
            "database unreachable (this worker's probe): message given back",
            extra={"job_id": job_id},
        )
        raise Reject("the database is unreachable from this worker", requeue=True)
    try:
        if spec.rate_limit and not _rate_allows(spec, job_id):
            return Outcome("queued", message="Rate-limited: sent again later")
        job = lc.claim(job_id, worker, os.getpid(), started_at)
    except WorkerRecycling as exc:  # this worker is going away (workers.threadpool): the next one takes it
        raise Reject(repr(exc), requeue=True) from exc
    except (OperationalError, PoolTimeoutError) as exc:
        # The database did not answer before the claim (this worker is cut from it): nothing was
        # written, so the message goes back to its queue for a worker that reaches the database. Failing
        # the task would acknowledge it and leave the job queued with no message anywhere.
        log.warning("database unavailable before the claim; message given back", extra={"job_id": job_id})
        raise Reject(repr(exc), requeue=True) from exc
    if job is None:
        log.info("job not claimable, skipped", extra={"job_id": job_id, "job_type": spec.name})
        return SKIPPED
    try:
        lc.refill(job.queue)  # fair share: a start made room in the queue's buffer (shared.fairshare)
    except Exception:  # the job is claimed and must run; the maintenance pass refills the queue too
        log.exception("fair-share refill after a start failed", extra={"job_id": job.id})
    attempt = job.attempts
    ctx = RunContext(job.id, job.user_id, attempt, get_settings())
    try:
        try:
            params = spec.validate_params(job.params)
        except ValidationError as exc:
            raise PermanentError(f"stored params no longer valid: {exc}") from exc
        with hooks.performing(job.id, spec.name, attempt):
            try:
                result: Any = spec.perform(ctx, params)
            except SoftTimeLimitExceeded as exc:
                raise TimeLimitExceeded(
                    f"the attempt ran past the time limit of {spec.time_limit_seconds} s"
                ) from exc
    except JobCanceled:
        canceled = lc.mark_canceled(job.id, attempt)
        log.info("job canceled", extra={"job_id": job.id, "job_type": spec.name})
        return Outcome("canceled") if canceled is not None else SKIPPED
    except Postponed as exc:
        due = utcnow() + timedelta(seconds=exc.delay_s)
        lc.postpone(job.id, attempt, exc.delay_s, f"{exc}; next try at {due:%H:%M:%S} UTC")
        log.info(
            "job postponed",
            extra={
                "job_id": job.id,
                "job_type": spec.name,
                "wait_s": round(exc.delay_s, 3),
                "reason": str(exc),
            },
        )
        return Outcome("queued", message=str(exc))
    except Exception as exc:  # recorded on the job, with its traceback: never hidden
        outcome = lc.fail_attempt(job.id, attempt, exc, spec.retry)
        log.warning(
            "job attempt failed",
            extra={
                "job_id": job.id,
                "job_type": spec.name,
                "attempt": attempt,
                "status": outcome.status if outcome else None,
                "error": type(exc).__name__,
            },
        )
        return Outcome(outcome.status, outcome.error, outcome.message) if outcome else SKIPPED
    else:
        final_message = ctx.last_message if ctx.last_percent >= 100 and ctx.last_message else "Done"
        done = lc.succeed(job.id, attempt, result, final_message)
        return Outcome("succeeded") if done is not None else SKIPPED
