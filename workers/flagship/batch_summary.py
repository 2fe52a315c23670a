"""``batch.summary``: the last step of a batch import (``shared.imports.import_workflow``).

It runs once every row step has finished, whatever their outcome (the rows ``continue`` on failure),
counts them and mails the owner one summary. The rows themselves are plain ``character.generate`` steps
of the workflow: the jobs table and the workflow rules do the fan-out and the fan-in, with no job left
waiting in a worker process.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from shared.flagship.imports import SUMMARY_TYPE
from shared.jobtypes import JobContext, JobType, RetryPolicy
from shared.models import Job
from shared.states import Status
from workers import followups


class SummaryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_name: str | None = Field(None, max_length=200, description="The uploaded file's name.")


def row_counts(ctx: JobContext) -> Counter[str]:
    """The statuses of the other steps of this job's workflow (the import's rows)."""
    with ctx.session() as session:
        workflow_id = session.scalar(select(Job.workflow_id).where(Job.id == ctx.job_id))
        rows = session.execute(
            select(Job.status, func.count())
            .where(Job.workflow_id == workflow_id, Job.id != ctx.job_id)
            .group_by(Job.status)
        ).all()
        return Counter({status: n for status, n in rows})


def perform(ctx: JobContext, params: SummaryParams) -> dict[str, Any]:
    counts = row_counts(ctx)
    total = sum(counts.values())
    succeeded, failed, canceled = (
        counts[s.value] for s in (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)
    )
    summary = f"Imported {succeeded} of {total} characters ({failed} failed, {canceled} canceled)"
    followups.notify_owner(ctx, "Your character import finished", f"Hello,\n\n{summary}.\n", key="summary")
    ctx.progress(100, summary)
    return {"total": total, "succeeded": succeeded, "failed": failed, "canceled": canceled}


JOB = JobType(
    name=SUMMARY_TYPE,
    description="The last step of a batch import: counts its rows' outcomes and mails the owner a summary.",
    params=SummaryParams,
    perform=perform,
    queue="low",
    retry=RetryPolicy(max_attempts=3, backoff_base_s=5.0, backoff_max_s=120.0),
    internal=True,
)
