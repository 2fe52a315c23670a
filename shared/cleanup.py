"""What the recurring cleanups delete or end. Each function commits in batches and returns a count.

The job bodies in ``workers/jobs/cleanup_*.py`` call these with the session and clock they are given,
so they can be checked against a real database without a worker.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from shared import defaults
from shared.models import Job, JobEvent, JobSlot, MagicLink, UserSession, WebhookDelivery
from shared.serialize import job_to_dict
from shared.settings import exports_dir
from shared.states import FINISHED, Status
from shared.transitions import transition

BATCH = 500
# A file of no known job is left alone this long: its export job may still be committing.
ORPHAN_FILE_GRACE_S = 3600

JobUpdate = Callable[[dict[str, Any], int], None]


def _delete_in_batches(session: Session, model: Any, *conditions: Any) -> int:
    total = 0
    while True:
        ids = session.scalars(select(model.id).where(*conditions).limit(BATCH)).all()
        if not ids:
            return total
        session.execute(delete(model).where(model.id.in_(ids)))
        session.commit()
        total += len(ids)


def purge_magic_links(session: Session, now: datetime) -> int:
    """Delete expired magic links (spent ones expire too)."""
    return _delete_in_batches(session, MagicLink, MagicLink.expires_at < now)


def purge_sessions(session: Session, now: datetime) -> int:
    """Delete browser sessions that can no longer be used: expired, idle too long, or revoked."""
    idle_since = now - timedelta(seconds=defaults.SESSION_IDLE_TIMEOUT_S)
    dead = or_(
        UserSession.expires_at < now,
        UserSession.last_seen_at < idle_since,
        UserSession.revoked_at.is_not(None),
    )
    return _delete_in_batches(session, UserSession, dead)


def purge_events(session: Session, now: datetime, max_age_s: float) -> int:
    """Delete progress events older than ``max_age_s``."""
    return _delete_in_batches(session, JobEvent, JobEvent.created_at < now - timedelta(seconds=max_age_s))


def reap_stale_jobs(
    session: Session, now: datetime, running_timeout_s: float, retention_days: int, publish: JobUpdate
) -> dict[str, int]:
    """Fail running jobs without an update for ``running_timeout_s`` (``StaleJob``); cancel jobs that
    waited to start longer than the retention period."""
    message = f"No progress for {running_timeout_s / 3600:g} h: the job is presumed stuck"
    stale_running = session.scalars(
        select(Job.id).where(
            Job.status == Status.RUNNING.value, Job.updated_at < now - timedelta(seconds=running_timeout_s)
        )
    ).all()
    failed = 0
    for job_id in stale_running:
        job = transition(
            session,
            job_id,
            Status.FAILED,
            sources=[Status.RUNNING],
            now=now,
            where=[Job.updated_at < now - timedelta(seconds=running_timeout_s)],
            error={"type": "StaleJob", "message": message},
            finished_at=now,
            message=f"Failed: StaleJob: {message}",
        )
        if job is not None:
            session.execute(delete(JobSlot).where(JobSlot.job_id == job_id))  # blocked jobs may take it
            failed += _commit_and_publish(session, job, publish)
    cutoff = now - timedelta(days=retention_days)
    never_started = session.scalars(
        select(Job.id).where(
            or_(
                Job.status.in_([Status.QUEUED.value, Status.BLOCKED.value]) & (Job.updated_at < cutoff),
                Job.status.in_([Status.SCHEDULED.value, Status.RETRYING.value]) & (Job.scheduled_at < cutoff),
            )
        )
    ).all()
    canceled = 0
    for job_id in never_started:
        job = transition(
            session,
            job_id,
            Status.CANCELED,
            sources=[Status.QUEUED, Status.BLOCKED, Status.SCHEDULED, Status.RETRYING],
            now=now,
            finished_at=now,
            message=f"Canceled: did not start within {retention_days} days",
        )
        if job is not None:
            canceled += _commit_and_publish(session, job, publish)
    return {"failed": failed, "canceled": canceled}


def _commit_and_publish(session: Session, job: Job, publish: JobUpdate) -> int:
    session.commit()
    publish(job_to_dict(job), job.user_id)
    return 1


def apply_retention(
    session: Session, now: datetime, retention_days: int, instance_dir: Path
) -> dict[str, int]:
    """Delete finished jobs (with their events and attempts), webhook deliveries and export files older
    than ``retention_days``."""
    cutoff = now - timedelta(days=retention_days)
    finished = [s.value for s in FINISHED]
    jobs = _delete_in_batches(session, Job, Job.status.in_(finished), Job.finished_at < cutoff)
    deliveries = _delete_in_batches(session, WebhookDelivery, WebhookDelivery.received_at < cutoff)
    files = remove_expired_exports(session, instance_dir, cutoff.timestamp(), now.timestamp())
    return {"jobs": jobs, "webhook_deliveries": deliveries, "export_files": files}


def remove_expired_exports(session: Session, instance_dir: Path, cutoff_ts: float, now_ts: float) -> int:
    """Delete export files older than the cutoff, and files whose job no longer exists."""
    folder = exports_dir(instance_dir)
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        if not path.is_file():
            continue
        job_id = path.name.split(".", 1)[0]
        modified = path.stat().st_mtime
        orphan = modified < now_ts - ORPHAN_FILE_GRACE_S and session.get(Job, job_id) is None
        if modified < cutoff_ts or orphan:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
