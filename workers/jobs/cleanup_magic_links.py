"""``cleanup.magic_links``: deletes expired magic links and dead browser sessions (hourly, from beat)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.cleanup import purge_magic_links, purge_sessions
from shared.jobtypes import JobContext, JobType, RetryPolicy
from shared.models import utcnow
from workers.permissions import require_operator


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def perform(ctx: JobContext, params: NoParams) -> dict[str, Any]:
    require_operator(ctx)
    now = utcnow()
    with ctx.session() as session:
        deleted = purge_magic_links(session, now)
        sessions = purge_sessions(session, now)
    ctx.progress(100, f"Deleted {deleted} expired magic links and {sessions} ended sessions")
    return {"deleted": deleted, "sessions_deleted": sessions}


JOB = JobType(
    name="cleanup.magic_links",
    description="Deletes expired magic links and ended browser sessions (expired, idle or signed out). "
    "Runs hourly; operators only.",
    params=NoParams,
    perform=perform,
    queue="low",
    retry=RetryPolicy(max_attempts=3, backoff_base_s=30.0, backoff_max_s=300.0),
    unique_by=lambda p: "all",
    internal=True,
    time_limit_seconds=600,
)
