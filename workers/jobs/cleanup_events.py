"""``cleanup.events``: deletes progress events older than a day (daily, from beat)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared import defaults
from shared.jobtypes import JobContext, JobType, RetryPolicy
from shared.models import utcnow
from workers.followups import job_service
from workers.permissions import require_operator


class EventsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_age_s: int = Field(defaults.EVENT_RETENTION_S, ge=60, description="Delete events older than this.")


def perform(ctx: JobContext, params: EventsParams) -> dict[str, Any]:
    require_operator(ctx)
    deleted = job_service().machine.purge_events(utcnow() - timedelta(seconds=params.max_age_s))
    ctx.progress(100, f"Deleted {deleted} progress events older than {params.max_age_s} s")
    return {"deleted": deleted}


JOB = JobType(
    name="cleanup.events",
    description="Deletes progress events older than one day. Runs daily; operators only.",
    params=EventsParams,
    perform=perform,
    queue="low",
    retry=RetryPolicy(max_attempts=3, backoff_base_s=30.0, backoff_max_s=300.0),
    unique_by=lambda p: "all",
    internal=True,
    time_limit_seconds=600,
)
