"""Why a job that is not running waits: the job page, ``GET /api/jobs/<id>`` and ``questboard jobs why``.

``waiting_reason`` reads the database only (a few indexed queries for one job), so it is given for one job
at a time and left out of lists and live updates. Its shape is ``{"code", "message", "until"}``, ``until``
being an ISO 8601 UTC time or null; it is None for a job that is not waiting (running or finished).

Codes (checked in this order, the first that holds is the answer):

- ``scheduled``: waits for its run time (``until``); a debounced job moves it with every repeat;
- ``retrying``: an attempt failed; the next one starts at ``until``;
- ``queue_paused``: its queue is paused by an operator (``shared.queues``);
- ``rate_limited``: the type's rate limit, or a limit its body met (the LLM's), said wait until ``until``;
- ``dispatch_pending``: the broker did not take its message; the maintenance loop sends it again;
- ``concurrency``: blocked on its concurrency key, ``3/3 running``;
- ``dependencies``: blocked without a concurrency key (a workflow step whose dependencies have not finished);
- ``fair_share``: held in the database for its owner's turn in the queue (shared.fairshare);
- ``queued``: waiting for a worker, with the jobs ahead of it in its queue.

A queued job's turn is decided by ``TURN_CHECKS``, in order: a dispatcher that holds jobs back (fair share
between users) puts its check before ``queued_behind``, which always answers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared import fairshare
from shared.db import get_sessionmaker
from shared.errors import NotFound
from shared.models import Job, JobSlot, QueueState, utcnow
from shared.serialize import iso
from shared.states import Status

Reason = dict[str, Any]
CODES = (
    "scheduled",
    "retrying",
    "queue_paused",
    "rate_limited",
    "dispatch_pending",
    "concurrency",
    "dependencies",
    "fair_share",
    "queued",
)


def reason(code: str, message: str, until: datetime | None = None) -> Reason:
    return {"code": code, "message": message, "until": iso(until)}


def at(when: datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S} UTC"


def queued_behind(session: Session, job: Job) -> Reason:
    """How many queued jobs of its queue were queued before it (the broker hands them out in that order)."""
    ahead = (
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(
                Job.status == Status.QUEUED.value,
                Job.queue == job.queue,
                Job.updated_at < job.updated_at,
                Job.id != job.id,
            )
        )
        or 0
    )
    if not ahead:
        return reason("queued", f"Queued in {job.queue}: next to start when a worker is free.")
    jobs = "job" if ahead == 1 else "jobs"
    return reason("queued", f"Queued in {job.queue}: {ahead} {jobs} ahead.")


def fair_share_turn(session: Session, job: Job) -> Reason | None:
    """A job held back for its owner's fair-share turn (shared.fairshare): who goes before it."""
    if not job.held:
        return None
    turn = fairshare.turn_of(sessionmaker(bind=session.get_bind()), job.id)
    return None if turn is None else reason("fair_share", f"{turn.describe()}.")


# A queued job's turn, first answer wins; the last check always answers.
TURN_CHECKS: tuple[Callable[[Session, Job], Reason | None], ...] = (fair_share_turn, queued_behind)


def _queued(session: Session, job: Job, now: datetime) -> Reason:
    if session.scalar(select(QueueState.paused).where(QueueState.name == job.queue)):
        return reason("queue_paused", f"Queue {job.queue} is paused; its jobs wait until it is resumed.")
    if job.needs_dispatch and job.scheduled_at is not None and job.scheduled_at > now:
        return reason("rate_limited", job.message or "Rate-limited.", job.scheduled_at)
    if job.needs_dispatch:
        return reason("dispatch_pending", "The broker did not take it yet; it is sent again shortly.")
    for check in TURN_CHECKS:
        found = check(session, job)
        if found is not None:
            return found
    raise AssertionError("the last turn check always answers")


def _blocked(session: Session, job: Job) -> Reason:
    if job.concurrency_key is None:
        return reason("dependencies", "Waiting for its dependencies to finish.")
    held = session.scalar(select(func.count()).where(JobSlot.key == job.concurrency_key)) or 0
    return reason(
        "concurrency",
        f"Waiting for a slot of concurrency key {job.concurrency_key}: "
        f"{held}/{job.concurrency_limit or 1} running.",
    )


def waiting_reason(session: Session, job: Job, now: datetime | None = None) -> Reason | None:
    """Why ``job`` waits, or None when it is running or finished."""
    now = now or utcnow()
    status = Status(job.status)
    if status is Status.SCHEDULED:
        due = job.scheduled_at or now
        moved_by = f" A submit with debounce key {job.debounce_key} moves it." if job.debounce_key else ""
        return reason("scheduled", f"Scheduled: starts at {at(due)}.{moved_by}", due)
    if status is Status.RETRYING:
        due = job.scheduled_at or now
        return reason(
            "retrying",
            f"Attempt {job.attempts} of {job.max_attempts} failed; the next starts at {at(due)}.",
            due,
        )
    if status is Status.QUEUED:
        return _queued(session, job, now)
    if status is Status.BLOCKED:
        return _blocked(session, job)
    return None


def explain(database_url: str, job_id: str) -> tuple[dict[str, Any], Reason | None]:
    """For operators (``questboard jobs why``): the job's id, type and status, and why it waits."""
    with get_sessionmaker(database_url)() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"No job {job_id!r}.")
        return {"id": job.id, "type": job.type, "status": job.status}, waiting_reason(session, job)
