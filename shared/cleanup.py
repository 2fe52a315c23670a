"""What the recurring cleanups delete. Each function commits in batches and returns a count.

Jobs and their events are the state machine's: ending stuck and never-started ones is
``Machine.reap_stale``, deleting old events and finished jobs ``Machine.purge_events`` and
``Machine.delete_finished``.

The job bodies in ``workers/jobs/cleanup_*.py`` call these with the session and clock they are given,
so they can be checked against a real database without a worker.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from shared import defaults
from shared.jobstate import Machine
from shared.models import Job, MagicLink, UserSession, WebhookDelivery, Workflow, WorkflowStep
from shared.settings import exports_dir


def _delete_in_batches(session: Session, model: Any, *conditions: Any) -> int:
    total = 0
    while True:
        ids = session.scalars(select(model.id).where(*conditions).limit(defaults.CLEANUP_BATCH_ROWS)).all()
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


def apply_retention(
    session: Session, jobs: Machine, now: datetime, retention_days: int, instance_dir: Path
) -> dict[str, int]:
    """Delete finished jobs (with their events and attempts), finished workflows none of whose steps is
    left, webhook deliveries and export files older than ``retention_days``."""
    cutoff = now - timedelta(days=retention_days)
    deleted = jobs.delete_finished(cutoff)
    no_steps_left = ~select(WorkflowStep.job_id).where(WorkflowStep.workflow_id == Workflow.id).exists()
    workflows = _delete_in_batches(
        session, Workflow, Workflow.finished_at.is_not(None), Workflow.finished_at < cutoff, no_steps_left
    )
    deliveries = _delete_in_batches(session, WebhookDelivery, WebhookDelivery.received_at < cutoff)
    files = remove_expired_exports(session, instance_dir, cutoff.timestamp(), now.timestamp())
    return {"jobs": deleted, "workflows": workflows, "webhook_deliveries": deliveries, "export_files": files}


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
        orphan = modified < now_ts - defaults.ORPHAN_EXPORT_FILE_GRACE_S and session.get(Job, job_id) is None
        if modified < cutoff_ts or orphan:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
