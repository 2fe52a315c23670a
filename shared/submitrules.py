"""What a submitter may ask for: which types, which queue, how far ahead, how much waiting work.

The rules of contract §9 in one place, checked by ``JobService.submit`` before anything is written:

- a normal user submits only user types; an internal type is refused exactly like an unknown one (its
  existence is not revealed). Admins may submit internal types, and so does the system through its own
  path (``system=True``: ``shared.system.SystemJobs`` and the follow-ups a job submits for the system);
- ``queue`` may be the type's own or a lower one; a higher one is for admins and the system (403);
- ``delay_seconds`` and ``run_at`` reach at most ``MAX_SCHEDULE_AHEAD_S`` ahead (422);
- the jobs a user has waiting (scheduled, queued, blocked, retrying, children included) stay under a cap.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select

from shared import defaults
from shared.errors import Forbidden, InvalidRequest
from shared.jobtypes import QUEUES, JobType, queue_rank
from shared.models import Job, User
from shared.states import Status

# Work that waits for a worker: what the cap on waiting jobs counts.
WAITING = (Status.SCHEDULED, Status.QUEUED, Status.BLOCKED, Status.RETRYING)
COUNT_WAITING = (
    select(func.count())
    .select_from(Job.__table__)
    .where(
        Job.__table__.c.user_id == bindparam("b_user"),
        Job.__table__.c.status.in_([s.value for s in WAITING]),
    )
)
AHEAD_DAYS = defaults.MAX_SCHEDULE_AHEAD_S // 86400


def may_submit_internal(user: User, system: bool) -> bool:
    """Admins and the system's own path may submit internal types."""
    return system or bool(user.is_admin)


def job_type_for(registry: Mapping[str, JobType], job_type: str, user: User, system: bool) -> JobType:
    """The type to run; InvalidRequest (422) for an unknown type and, for a normal user, an internal one."""
    spec = registry.get(job_type)
    if spec is None or (spec.internal and not may_submit_internal(user, system)):
        raise InvalidRequest(f"Unknown job type {job_type!r}.", {"type": "unknown job type"})
    return spec


def queue_for(spec: JobType, queue: str | None, user: User, system: bool) -> str:
    """The queue to use: the type's own unless named; a queue above the type's own needs an admin (403)."""
    queue = queue or spec.queue
    if queue not in QUEUES:
        raise InvalidRequest(f"Unknown queue {queue!r}.", {"queue": f"one of {', '.join(QUEUES)}"})
    if queue_rank(queue) < queue_rank(spec.queue) and not may_submit_internal(user, system):
        lower = ", ".join(QUEUES[queue_rank(spec.queue) :])
        raise Forbidden(
            f"Only admins may put {spec.name} jobs on {queue!r}, above the type's own queue "
            f"{spec.queue!r}; you may use {lower}.",
            {"queue": f"one of {lower}"},
        )
    return queue


def due_time(now: datetime, delay_seconds: float | None, run_at: datetime | None) -> datetime | None:
    """When the job may start (None: now); InvalidRequest beyond ``MAX_SCHEDULE_AHEAD_S`` ahead."""
    if delay_seconds is not None and run_at is not None:
        raise InvalidRequest("Give delay_seconds or run_at, not both.", {"run_at": "conflicts"})
    limit = timedelta(seconds=defaults.MAX_SCHEDULE_AHEAD_S)
    if delay_seconds is not None:
        if not 0 <= delay_seconds <= defaults.MAX_SCHEDULE_AHEAD_S:
            raise InvalidRequest(
                f"delay_seconds must be from 0 to {defaults.MAX_SCHEDULE_AHEAD_S} ({AHEAD_DAYS} days).",
                {"delay_seconds": f"at most {defaults.MAX_SCHEDULE_AHEAD_S} seconds ({AHEAD_DAYS} days)"},
            )
        return now + timedelta(seconds=delay_seconds) if delay_seconds else None
    if run_at is not None and run_at - now > limit:
        raise InvalidRequest(
            f"run_at may be at most {AHEAD_DAYS} days ahead.",
            {"run_at": f"at most {AHEAD_DAYS} days ahead"},
        )
    return run_at


def waiting_cost(spec: JobType, model: Any) -> int:
    """Waiting jobs a submit adds: the job, plus the children it will submit (a batch's rows)."""
    return 1 + (spec.fan_out(model) if spec.fan_out else 0)


def queued_limit_message(waiting: int, cost: int, limit: int) -> str:
    """What a user over the cap on waiting jobs is told."""
    adding = f"this adds {cost} jobs" if cost > 1 else "this adds one more"
    return (
        f"You have {waiting} jobs waiting and {adding}; the limit is {limit} waiting jobs per user "
        "(QUESTBOARD_USER_QUEUED_LIMIT). Wait for some to run or cancel some, then try again."
    )
