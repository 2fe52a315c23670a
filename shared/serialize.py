"""The public JSON shape of jobs and events (contract §3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.models import Job, JobEvent


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def job_to_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "type": job.type,
        "status": job.status,
        "progress": job.progress,
        "message": job.message,
        "queue": job.queue,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "params": job.params,
        "result": job.result,
        "error": job.error,
        "created_at": iso(job.created_at),
        "scheduled_at": iso(job.scheduled_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "parent_id": getattr(job, "parent_id", None),
        "workflow_id": getattr(job, "workflow_id", None),
        "debounce_key": getattr(job, "debounce_key", None),
    }


def event_to_dict(event: JobEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "status": event.status,
        "progress": event.progress,
        "message": event.message,
        "created_at": iso(event.created_at),
    }
