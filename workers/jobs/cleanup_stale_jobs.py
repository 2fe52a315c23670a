"""``cleanup.stale_jobs``: the reaper. Fails jobs stuck ``running`` without an update for hours
(error ``StaleJob``) and cancels jobs that waited to start longer than the retention period.

Jobs of dead workers are recovered within seconds by the workers' maintenance loop; this catches the
rest, e.g. a body hung in a call that never returns on a worker that is otherwise alive.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared import defaults
from shared.jobtypes import JobContext, JobType, RetryPolicy
from shared.models import utcnow
from shared.settings import get_settings
from workers.followups import job_service
from workers.permissions import require_operator


class ReaperParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    running_timeout_s: int = Field(
        defaults.STALE_RUNNING_S, ge=60, description="A running job silent this long is stuck."
    )
    retention_days: int | None = Field(None, ge=1, description="Default: QUESTBOARD_JOB_RETENTION_DAYS.")


def perform(ctx: JobContext, params: ReaperParams) -> dict[str, Any]:
    require_operator(ctx)
    days = params.retention_days or get_settings().job_retention_days
    counts = job_service().machine.reap_stale(utcnow(), params.running_timeout_s, days)
    ctx.progress(100, f"Failed {counts['failed']} stuck jobs, canceled {counts['canceled']} never started")
    return counts


JOB = JobType(
    name="cleanup.stale_jobs",
    description="Fails jobs stuck running for hours (StaleJob) and cancels ones that never started.",
    params=ReaperParams,
    perform=perform,
    queue="low",
    retry=RetryPolicy(max_attempts=3, backoff_base_s=30.0, backoff_max_s=300.0),
    unique_by=lambda p: "all",
    internal=True,
    time_limit_seconds=600,
)
