"""``cleanup.retention``: deletes finished jobs, webhook deliveries and export files older than
``QUESTBOARD_JOB_RETENTION_DAYS`` (daily, from beat)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.cleanup import apply_retention
from shared.jobtypes import JobContext, JobType, RetryPolicy
from shared.models import utcnow
from shared.settings import get_settings
from workers.followups import job_service
from workers.permissions import require_operator


class RetentionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retention_days: int | None = Field(None, ge=1, description="Default: QUESTBOARD_JOB_RETENTION_DAYS.")


def perform(ctx: JobContext, params: RetentionParams) -> dict[str, Any]:
    require_operator(ctx)
    settings = get_settings()
    days = params.retention_days or settings.job_retention_days
    with ctx.session() as session:
        counts = apply_retention(session, job_service().machine, utcnow(), days, settings.instance_dir)
    ctx.progress(
        100,
        f"Deleted {counts['jobs']} jobs, {counts['webhook_deliveries']} webhook deliveries and "
        f"{counts['export_files']} export files older than {days} days",
    )
    return {**counts, "retention_days": days}


JOB = JobType(
    name="cleanup.retention",
    description="Deletes finished jobs and export files after the retention period. Daily; operators only.",
    params=RetentionParams,
    perform=perform,
    queue="low",
    retry=RetryPolicy(max_attempts=3, backoff_base_s=30.0, backoff_max_s=300.0),
    unique_by=lambda p: "all",
    internal=True,
    time_limit_seconds=600,
)
