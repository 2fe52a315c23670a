"""What the job pages show, computed without Flask: humanized times and durations, redacted params, the
message a user (not an operator) reads, and a job's wait and run time."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from shared.logging_setup import redact_value

# Types whose messages speak to operators (mail transport, indexing, webhooks, cleanups). Helper-defined
# types may also declare ``internal = True`` on their JobType; both count.
SYSTEM_TYPES = frozenset({"mail.deliver", "content.index", "webhook.process"})
USER_TEXT = {
    "scheduled": "Scheduled",
    "queued": "Waiting to start",
    "blocked": "Waiting for a free slot",
    "running": "Working on it",
    "retrying": "Trying again shortly",
    "succeeded": "Done",
    "failed": "Failed",
    "canceled": "Canceled",
}


def parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def duration_text(seconds: float | None) -> str:
    """``0.42 s``, ``12 s``, ``3 min 4 s``, ``2 h 5 min``, ``3 d 4 h``; an em dash for None."""
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def relative_text(value: str | datetime | None, now: datetime | None = None) -> str:
    """``just now``, ``5 min ago``, ``in 2 h``; an em dash for None."""
    moment = parse_time(value)
    if moment is None:
        return "—"
    delta = ((now or datetime.now(UTC)) - moment).total_seconds()
    if abs(delta) < 5:
        return "just now"
    short = f"{abs(delta):.0f} s" if abs(delta) < 60 else " ".join(duration_text(abs(delta)).split()[:2])
    return f"{short} ago" if delta > 0 else f"in {short}"


def exact_utc(value: str | datetime | None) -> str:
    """``2026-12-01 19:31:16 UTC`` (the exact time, for a title)."""
    moment = parse_time(value)
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty_json(value: Any) -> str:
    """Indented JSON with every secret we know the shape of (or the key of) replaced by ``***``."""
    return json.dumps(redact_value(value), indent=2, sort_keys=True, ensure_ascii=False)


def is_system_type(job_type: str, registry: Any = None) -> bool:
    spec = registry.get(job_type) if registry is not None else None
    return (
        bool(getattr(spec, "internal", False)) or job_type in SYSTEM_TYPES or job_type.startswith("cleanup.")
    )


def user_message(job: dict[str, Any], registry: Any = None) -> str:
    """The job's message, or for system types a plain word on its status (no operator details)."""
    if is_system_type(job["type"], registry):
        return USER_TEXT.get(job["status"], job["status"])
    return job.get("message") or ""


def timings(job: dict[str, Any]) -> dict[str, float | None]:
    """``wait_s`` (ready to first start) and ``run_s`` (first start to finish), None when unknown."""
    created, scheduled = parse_time(job.get("created_at")), parse_time(job.get("scheduled_at"))
    started, finished = parse_time(job.get("started_at")), parse_time(job.get("finished_at"))
    ready = scheduled if scheduled is not None else created
    wait = (started - ready).total_seconds() if started and ready else None
    run = (finished - started).total_seconds() if finished and started else None
    return {"wait_s": None if wait is None else max(0.0, wait), "run_s": run}
