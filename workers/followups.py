"""Submitting jobs from inside a job body: follow-ups (children of the running job) and system jobs.

Follow-ups are children of the job that made them (``parent_id``), so they do not count against the
owner's active-job limit, and a retried parent finds them by their idempotency keys instead of adding
more. ``notify_owner`` mails the owner through the outbox and a ``mail.deliver`` child (the flagship's
character chain, ``character.generate`` → ``content.index`` → ``mail.deliver``, is built from these).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from questboard import app as composition
from shared.jobs import JobService
from shared.jobtypes import JobContext
from shared.mail import queue_mail
from shared.models import Job, User
from shared.system import SystemJobs

MAIL_JOB = "mail.deliver"


def job_service() -> JobService:
    """This process's job service, from the composition root (built on first use, after the pool forks)."""
    return composition.current().jobs


def system_jobs() -> SystemJobs:
    """This process's submitter of system-owned jobs."""
    return composition.current().system


def owner(ctx: JobContext) -> User:
    user = composition.current().accounts.get_user(ctx.user_id)
    if user is None:
        raise LookupError(f"the owner (user {ctx.user_id}) of job {ctx.job_id} is gone")
    return user


def submit_child(
    ctx: JobContext,
    job_type: str,
    params: dict[str, Any],
    key: str,
    queue: str | None = None,
    *,
    for_system: bool = False,
) -> dict[str, Any]:
    """Submit a follow-up of the running job, once per ``key`` however often the body runs.

    ``for_system``: the system's own work for the owner (index, mail: internal types, not counted against
    the owner's cap on waiting jobs). Otherwise the child is the owner's own work (a batch row) and meets
    every rule a submit of the owner meets, the cap on waiting jobs included.
    """
    job, _ = job_service().submit(
        owner(ctx),
        job_type,
        params,
        queue=queue,
        parent_id=ctx.job_id,
        idempotency_key=f"{ctx.job_id}:{key}",
        system=for_system,
    )
    return job


def notify_owner(ctx: JobContext, subject: str, body: str, key: str = "notify") -> dict[str, Any] | None:
    """Mail the job's owner through the outbox and a ``mail.deliver`` child; once per ``key``."""
    with ctx.session() as session:
        already = session.scalars(
            select(Job.id).where(Job.parent_id == ctx.job_id, Job.idempotency_key == f"{ctx.job_id}:{key}")
        ).first()
        if already is not None:
            return None
        user = session.get(User, ctx.user_id)
        if user is None:
            return None
        mail_id = queue_mail(session, user.email, subject, body).id
    return submit_child(ctx, MAIL_JOB, {"outbox_id": mail_id}, key, for_system=True)
