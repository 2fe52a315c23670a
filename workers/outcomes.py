"""How an attempt ends for Celery, so Flower shows each job's real state (contract §7).

The job row is the truth and is committed before the task ends; the task then ends the way Celery reports
that state:

| job after the attempt                      | the task                          | Flower    |
| ------------------------------------------ | --------------------------------- | --------- |
| ``succeeded``                              | returns                           | SUCCESS   |
| ``failed`` (attempts spent, not retryable) | raises ``JobFailed``              | FAILURE   |
| ``retrying`` (or back to ``queued``)       | raises ``celery.exceptions.Retry`` | RETRY    |
| ``canceled``                               | sends ``task-revoked``, ``Ignore`` | REVOKED  |
| running elsewhere (a duplicate delivery)   | ``Ignore``                        | unchanged |

Every one of these acknowledges the message (acks_late; ``task_acks_on_failure_or_timeout``): none is
redelivered, and ``Retry`` is constructed here rather than through ``task.retry()``, so Celery sends no new
message. The next attempt is sent by the maintenance loop when the job's ``scheduled_at`` comes, as
before, with the same task id (the job id): Flower shows the latest attempt of each job.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from celery import Task
from celery.exceptions import Ignore, Retry
from sqlalchemy import select

from shared.db import get_sessionmaker
from shared.models import Job
from shared.settings import get_settings
from shared.states import Status


class Outcome(NamedTuple):
    """The job's status after an attempt (``""``: this worker did not run it, look it up)."""

    status: str
    error: dict[str, str] | None = None
    message: str = ""


SKIPPED = Outcome("")
log = logging.getLogger("questboard.worker")


class JobFailed(Exception):
    """The job is ``failed``: its error, raised so Celery marks the task FAILURE (expected: no traceback)."""


def _current(job_id: str) -> Outcome:
    with get_sessionmaker(get_settings().resolved_database_url)() as session:
        row = session.execute(select(Job.status, Job.error, Job.message).where(Job.id == job_id)).first()
    return Outcome(row.status, row.error, row.message or "") if row is not None else SKIPPED


def report(task: Task, job_id: str, outcome: Outcome) -> Any:
    """End the task as the job's state says (see the module doc); returns only for a success."""
    if not outcome.status:
        outcome = _current(job_id)
    status = outcome.status
    if status == Status.SUCCEEDED.value:
        return None
    if status == Status.FAILED.value:
        error = outcome.error or {}
        raise JobFailed(f"{error.get('type', 'Error')}: {error.get('message', '')}".rstrip(": "))
    if status in (Status.RETRYING.value, Status.QUEUED.value, Status.SCHEDULED.value):
        raise Retry(outcome.message or status)  # no ``when``/``sig``: nothing is sent, the row says when
    if status == Status.CANCELED.value:
        try:  # Celery has no "revoked" ending a task can raise: the event is what Flower reads
            task.send_event("task-revoked", terminated=False, signum=None, expired=False)
        except Exception as exc:  # best effort: the job is canceled either way (the broker is down)
            log.info("task-revoked event not sent", extra={"job_id": job_id, "error": type(exc).__name__})
        raise Ignore()
    raise Ignore()  # running on another worker, blocked, or gone: this delivery says nothing new
