"""``batch.import``: one character per row, as child ``character.generate`` jobs, with a fan-in.

No Celery chord: the jobs table is the source of truth. The parent submits its children (idempotently,
so a retried parent adds none), then waits cooperatively: every ``POLL_INTERVAL_S`` it reads the
children's statuses, reports ``finished / total`` as its progress and honours a cancel (which cancels the
children too). When the last child finishes, the fan-in step counts the outcomes and mails the owner.

A waiting parent holds a worker process, so at most ``MAX_RUNNING_IMPORTS`` run at once (a concurrency
key): the pool serving ``low`` needs more processes than that, or children would wait behind parents.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, update

from shared.errors import JobCanceled
from shared.flagship.imports import MAX_IMPORT_ROWS
from shared.jobtypes import ConcurrencyLimit, JobContext, JobType, RetryPolicy
from shared.models import Job, JobEvent, utcnow
from shared.serialize import job_to_dict
from shared.states import FINISHED, NOT_STARTED, Status
from workers import followups
from workers.flagship.character_generate import CharacterParams

CHILD_TYPE = "character.generate"
CHILD_QUEUE = "low"  # bulk work: it must not delay characters people are waiting for
POLL_INTERVAL_S = 0.5
HEARTBEAT_S = 10.0  # progress is written when counts change, and at least this often
MAX_RUNNING_IMPORTS = 1


class ImportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[CharacterParams] = Field(min_length=1, max_length=MAX_IMPORT_ROWS)
    source_name: str | None = Field(None, max_length=200, description="The uploaded file's name.")


def child_counts(ctx: JobContext) -> Counter[str]:
    with ctx.session() as session:
        rows = session.execute(
            select(Job.status, func.count()).where(Job.parent_id == ctx.job_id).group_by(Job.status)
        ).all()
        return Counter({status: n for status, n in rows})


def cancel_requested(ctx: JobContext) -> bool:
    with ctx.session() as session:
        job = session.get(Job, ctx.job_id)
        return job is None or job.cancel_requested or job.status != Status.RUNNING.value


def cancel_children(ctx: JobContext) -> None:
    """Cancel children that have not started (at once, in one statement) and ask running ones to stop."""
    now = utcnow()
    with ctx.session() as session:
        canceled = session.scalars(
            update(Job)
            .where(Job.parent_id == ctx.job_id, Job.status.in_([s.value for s in NOT_STARTED]))
            .values(status=Status.CANCELED.value, finished_at=now, updated_at=now, message="Import canceled")
            .returning(Job)
            .execution_options(synchronize_session=False)
        ).all()
        session.add_all(
            JobEvent(job_id=j.id, status=j.status, progress=j.progress, message=j.message) for j in canceled
        )
        session.execute(
            update(Job)
            .where(Job.parent_id == ctx.job_id, Job.status == Status.RUNNING.value)
            .values(cancel_requested=True, cancel_requested_at=now, message="Cancel requested")
        )
        updates = [job_to_dict(j) for j in canceled]
    publisher = followups.job_service().publisher
    for job in updates:
        publisher.job_update(job, ctx.user_id)


def perform(ctx: JobContext, params: ImportParams) -> dict[str, Any]:
    total = len(params.rows)
    ctx.progress(0, f"Submitting {total} characters")
    for index, row in enumerate(params.rows):
        params = row.model_dump(mode="json", exclude_none=True)
        followups.submit_child(ctx, CHILD_TYPE, params, f"row:{index}", queue=CHILD_QUEUE)
    try:
        counts = wait_for_children(ctx, total)
    except JobCanceled:
        cancel_children(ctx)
        raise
    succeeded, failed, canceled = (
        counts[s.value] for s in (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)
    )
    summary = f"Imported {succeeded} of {total} characters ({failed} failed, {canceled} canceled)"
    followups.notify_owner(ctx, "Your character import finished", f"Hello,\n\n{summary}.\n", key="summary")
    ctx.progress(100, summary)
    return {"total": total, "succeeded": succeeded, "failed": failed, "canceled": canceled}


def wait_for_children(ctx: JobContext, total: int) -> Counter[str]:
    """Poll until every child has finished; progress is the finished share. Raises JobCanceled."""
    reported: tuple[int, int] | None = None
    last_report = 0.0
    while True:
        counts = child_counts(ctx)
        finished = sum(counts[s.value] for s in FINISHED)
        if finished >= total:
            return counts
        state = (finished, counts[Status.FAILED.value])
        if state != reported or time.monotonic() - last_report >= HEARTBEAT_S:
            ctx.progress(
                min(99, finished * 100 // total),
                f"{finished} of {total} characters finished ({state[1]} failed)",
            )
            reported, last_report = state, time.monotonic()
        elif cancel_requested(ctx):
            raise JobCanceled("cancel requested")
        time.sleep(POLL_INTERVAL_S)


JOB = JobType(
    name="batch.import",
    description="Creates one character per CSV row (child character.generate jobs) and waits for them all.",
    params=ImportParams,
    perform=perform,
    queue="low",
    retry=RetryPolicy(max_attempts=3, backoff_base_s=5.0, backoff_max_s=120.0),
    concurrency=ConcurrencyLimit(key=lambda p, uid: "batch.import", limit=MAX_RUNNING_IMPORTS),
    time_limit_seconds=3600,
    fan_out=lambda p: len(p.rows),
)
