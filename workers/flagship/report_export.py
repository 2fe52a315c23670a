"""``report.export``: the owner's jobs or characters as a CSV or JSON file, downloadable from the job."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from shared.choices import CaseInsensitive
from shared.flagship.exports import (
    CONTENT_TYPES,
    Format,
    Kind,
    count_records,
    export_path,
    iter_records,
    write_export,
)
from shared.jobtypes import JobContext, JobType, RetryPolicy
from shared.settings import get_settings

PROGRESS_EVERY_ROWS = 200


class ExportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Annotated[Kind, CaseInsensitive()] = Field(
        description="What to export: your jobs or your characters."
    )
    format: Annotated[Format, CaseInsensitive()] = Field(description="csv or json.")


def perform(ctx: JobContext, params: ExportParams) -> dict[str, Any]:
    settings = get_settings()
    target = export_path(settings.instance_dir, ctx.job_id, params.format)
    with ctx.session() as session:
        total = count_records(session, params.kind, ctx.user_id)
        ctx.progress(1, f"Exporting {total} {params.kind} as {params.format.upper()}")

        def on_row(n: int) -> None:
            if n % PROGRESS_EVERY_ROWS == 0:
                ctx.progress(min(99, n * 100 // max(total, 1)), f"Wrote {n} of {total} {params.kind}")

        rows = write_export(
            iter_records(session, params.kind, ctx.user_id), params.kind, params.format, target, on_row
        )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    ctx.progress(100, f"Exported {rows} {params.kind}")
    return {
        "kind": params.kind,
        "format": params.format,
        "rows": rows,
        "bytes": target.stat().st_size,
        "filename": f"questboard-{params.kind}-{stamp}.{params.format}",
        "content_type": CONTENT_TYPES[params.format],
        "download_url": f"/api/jobs/{ctx.job_id}/download",
        "url": f"/jobs/{ctx.job_id}/download",
    }


JOB = JobType(
    name="report.export",
    description="Writes your jobs or characters to a CSV or JSON file, downloadable from the job.",
    params=ExportParams,
    perform=perform,
    queue="low",
    retry=RetryPolicy(max_attempts=3, backoff_base_s=5.0, backoff_max_s=120.0),
    time_limit_seconds=600,
)
