"""Submitting jobs from inside a job body: follow-ups (children of the running job) and system jobs.

The chain of a character is ``character.generate`` → ``content.index`` → ``mail.deliver`` ("your
character is ready"): the generate body submits the other two when the character is saved. Follow-ups
are children of the job that made them (``parent_id``), so they do not count against the owner's
active-job limit, and a retried parent finds them by their idempotency keys instead of adding more.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import select

from shared.accounts import Accounts
from shared.imports import SUMMARY_TYPE
from shared.jobs import JobService
from shared.jobtypes import JobContext
from shared.mail import queue_mail
from shared.models import Job, User
from shared.publisher import SocketIOPublisher
from shared.settings import get_settings
from shared.system import SystemJobs

INDEX_JOB = "content.index"
MAIL_JOB = "mail.deliver"


@cache
def job_service() -> JobService:
    """This process's job service (built lazily, after the pool forks)."""
    from workers.celery_app import celery_app
    from workers.dispatch import CeleryDispatcher
    from workers.jobs import REGISTRY

    settings = get_settings()
    return JobService(
        settings.resolved_database_url,
        REGISTRY,
        SocketIOPublisher(settings.redis_url),
        CeleryDispatcher(celery_app),
        user_job_limit=settings.user_job_limit,
        user_queued_limit=settings.user_queued_limit,
    )


@cache
def system_jobs() -> SystemJobs:
    jobs = job_service()
    return SystemJobs(get_settings().resolved_database_url, jobs.registry, jobs.publisher, jobs.dispatcher)


def owner(ctx: JobContext) -> User:
    user = Accounts(get_settings().resolved_database_url).get_user(ctx.user_id)
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


def after_character_saved(ctx: JobContext, character_id: str, name: str) -> None:
    """The rest of the chain: index the character; tell the owner, unless it is a row of a batch import
    (the import's summary step mails one summary instead)."""
    # Keyed by the character: a retried attempt saves a new one, which needs its own index and mail.
    submit_child(ctx, INDEX_JOB, {"character_id": character_id}, f"index:{character_id}", for_system=True)
    with ctx.session() as session:
        workflow_id = session.scalar(select(Job.workflow_id).where(Job.id == ctx.job_id))
        in_batch = workflow_id is not None and session.scalar(
            select(Job.id).where(Job.workflow_id == workflow_id, Job.type == SUMMARY_TYPE).limit(1)
        )
    if not in_batch:
        url = f"{get_settings().base_url.rstrip('/')}/characters/{character_id}"
        notify_owner(
            ctx,
            f"{name} is ready",
            f"Hello,\n\nYour character {name} is ready:\n\n{url}\n\nHappy adventuring!\n",
            key=f"notify:{character_id}",
        )
