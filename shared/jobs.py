"""What users ask of jobs: submit, look up, list, cancel. The web layer is a thin shell over this."""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from shared import defaults, fairshare, hooks, submitrules
from shared.db import get_sessionmaker, write_gate
from shared.debounce import debounce_for, push_back
from shared.dispatch import Dispatcher
from shared.errors import Conflict, InvalidRequest, LimitReached, NotFound
from shared.jobstate import Machine
from shared.jobtypes import JobType
from shared.models import Job, JobEvent, User, new_id, utcnow
from shared.publisher import Publisher
from shared.serialize import event_to_dict, job_to_dict
from shared.states import ACTIVE, FINISHED, Status
from shared.waiting import waiting_reason

log = logging.getLogger("questboard.jobs")

JOBS = Job.__table__
STEP_WAITING = and_(JOBS.c.status == Status.BLOCKED.value, JOBS.c.workflow_id.is_not(None))
SUBMIT_GUARD = (
    update(User.__table__)
    .where(User.__table__.c.id == bindparam("b_user"))
    .values(submit_guard=User.__table__.c.submit_guard + 1)
)
COUNT_ACTIVE = (
    select(func.count())
    .select_from(JOBS)
    .where(JOBS.c.user_id == bindparam("b_user"), JOBS.c.status.in_([s.value for s in ACTIVE]))
    .where(~STEP_WAITING)  # workflow steps waiting on others do not count (contract §8)
)


# A submit's reads in one round trip, under its owner's lock: the owner's active jobs (the limit) and
# waiting ones (the cap), and the queue's fair-share state (whether the new job is held).
SUBMIT_READ = select(
    COUNT_ACTIVE.scalar_subquery(), submitrules.COUNT_WAITING.scalar_subquery(), *fairshare.STATE_COLUMNS
)


def validation_fields(exc: ValidationError, prefix: str = "") -> dict[str, str]:
    """pydantic errors as ``{"field.path": "message"}``."""
    fields: dict[str, str] = {}
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "__root__"
        fields[prefix + path] = err["msg"]
    return fields


def encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, job_id = base64.urlsafe_b64decode(padded.encode()).decode().split("|", 1)
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError("a cursor's time has a zone")
        return when.astimezone(UTC), job_id
    except (ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise InvalidRequest("Invalid cursor.", {"cursor": "not a cursor from a previous page"}) from exc


def newest_first(stmt: Select[Any], cursor: str | None, limit: int) -> Select[Any]:
    """``stmt`` over jobs, newest first, after ``cursor``, with one row beyond ``limit`` (it tells
    whether there is a next page)."""
    if cursor:
        created, last_id = decode_cursor(cursor)
        stmt = stmt.where(or_(Job.created_at < created, and_(Job.created_at == created, Job.id < last_id)))
    return stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)


class JobService:
    def __init__(
        self,
        database_url: str,
        registry: Mapping[str, JobType],
        publisher: Publisher,
        dispatcher: Dispatcher,
        user_job_limit: int = defaults.USER_JOB_LIMIT,
        user_queued_limit: int = defaults.USER_QUEUED_LIMIT,
    ) -> None:
        self._sessions = get_sessionmaker(database_url)
        self.registry = registry
        self.publisher = publisher
        self.dispatcher = dispatcher
        self.machine = Machine(database_url, publisher, dispatcher, gate=fairshare.send)
        self.user_job_limit = user_job_limit
        self.user_queued_limit = user_queued_limit
        # SQLite has one write lock per database, and a writer that finds it taken sleeps in SQLite's busy
        # handler (1, 2, 5, 10 ms ...). Submits queue on the host's write gate instead (shared.db): p99 of
        # POST /api/jobs at 16 connections went from 1.5 s to 0.13 s (BENCHMARKS.md, P2).
        self._url = database_url

    # ----- reading -------------------------------------------------------------------------------

    def _visible(self, session: Session, user: User, job_id: str) -> Job:
        job = session.get(Job, job_id)
        if job is None or (job.user_id != user.id and not user.is_admin):
            raise NotFound("No such job.")
        return job

    def get(self, user: User, job_id: str) -> dict[str, Any]:
        """One job, with why it waits (``shared.waiting``; lists leave that out: it costs queries)."""
        with self._sessions() as session:
            job = self._visible(session, user, job_id)
            return {**job_to_dict(job), "waiting_reason": waiting_reason(session, job)}

    def owner_of(self, user: User, job_id: str) -> int:
        """The owner's id of a job ``user`` may see (raises NotFound otherwise)."""
        with self._sessions() as session:
            return self._visible(session, user, job_id).user_id

    def list(
        self,
        user: User,
        status: str | None = None,
        job_type: str | None = None,
        limit: int = defaults.LIST_LIMIT_DEFAULT,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; ``next_cursor`` is None on the last page."""
        stmt = select(Job)
        if not user.is_admin:
            stmt = stmt.where(Job.user_id == user.id)
        if status:
            stmt = stmt.where(Job.status == status)
        if job_type:
            stmt = stmt.where(Job.type == job_type)
        stmt = newest_first(stmt, cursor, limit)
        with self._sessions() as session:
            jobs = list(session.scalars(stmt))
        next_cursor = encode_cursor(jobs[limit - 1]) if len(jobs) > limit else None
        return [job_to_dict(j) for j in jobs[:limit]], next_cursor

    def events(self, user: User, job_id: str) -> list[dict[str, Any]]:
        with self._sessions() as session:
            self._visible(session, user, job_id)
            rows = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
            return [event_to_dict(e) for e in rows]

    def active_count(self, user: User) -> int:
        with self._sessions() as session:
            return self._count_active(session, user.id)

    @staticmethod
    def _count_active(session: Session, user_id: int) -> int:
        return (
            session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.user_id == user_id, Job.status.in_([s.value for s in ACTIVE]))
                .where(~STEP_WAITING)
            )
            or 0
        )

    # ----- submitting ----------------------------------------------------------------------------

    def submit(
        self,
        user: User,
        job_type: str,
        params: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        delay_seconds: float | None = None,
        run_at: datetime | None = None,
        idempotency_key: str | None = None,
        debounce_key: str | None = None,
        debounce_seconds: float | None = None,
        parent_id: str | None = None,
        system: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Create the job (committed before any message is sent). Returns (job, created).

        Children of a fan-out (``parent_id``) do not count against the user's active-job limit, but do
        count against the cap on waiting jobs. ``system=True`` is the system's own path (it may submit
        internal types and use any queue); requests of people never set it (``shared.submitrules``).
        ``debounce_key`` + ``debounce_seconds``: see ``shared.debounce`` (a repeat returns (job, False)).
        """
        spec = submitrules.job_type_for(self.registry, job_type, user, system)
        try:
            model = spec.validate_params(params or {})
        except ValidationError as exc:
            raise InvalidRequest("Invalid params.", validation_fields(exc, "params.")) from exc
        clean = model.model_dump(mode="json")
        unique_key = spec.unique_by(model) if spec.unique_by else None
        concurrency_key = spec.concurrency.key(model, user.id) if spec.concurrency else None
        queue = submitrules.queue_for(spec, queue, user, system)
        now = utcnow()
        debounce = debounce_for(spec, debounce_key, debounce_seconds, delay_seconds, run_at)
        due = debounce.due(now) if debounce else submitrules.due_time(now, delay_seconds, run_at)
        scheduled = due is not None and due > now
        cost = submitrules.waiting_cost(spec, model)

        with write_gate(self._url), self._sessions() as session:
            # Prebuilt Core statements on the session's connection (no unit of work): a third of the
            # submit's CPU (BENCHMARKS.md, P2). Taking the user row's write lock first serialises this
            # user's submissions across processes (a row lock on PostgreSQL, the database write lock on
            # SQLite), so the count below cannot be raced.
            conn = session.connection()
            conn.execute(SUBMIT_GUARD, {"b_user": user.id})
            if idempotency_key:
                existing = session.scalars(
                    select(Job).where(Job.user_id == user.id, Job.idempotency_key == idempotency_key)
                ).first()
                if existing is not None:
                    session.rollback()
                    return job_to_dict(existing), False
            if debounce is not None:  # a repeat within the window moves the scheduled job (shared.debounce)
                moved = push_back(
                    self.machine, conn, user.id, spec.name, debounce, clean, concurrency_key, now
                )
                if moved is not None:
                    session.commit()
                    data = job_to_dict(moved)
                    self.publisher.job_update(data, user.id)
                    return data, False
            if unique_key is not None:
                # Unique per owner: another user's job never blocks (or reveals) this one.
                existing = self._active_unique(session, user.id, spec.name, unique_key)
                if existing is not None:
                    session.rollback()
                    return job_to_dict(existing), False
            counts = conn.execute(SUBMIT_READ, {"b_user": user.id, **fairshare.state_params(queue)}).one()
            active_jobs, waiting_jobs, *queue_state = counts
            active = 0 if parent_id else active_jobs
            if active >= self.user_job_limit:
                session.rollback()
                raise LimitReached(
                    f"You already have {active} active jobs (the limit is {self.user_job_limit}). "
                    "Wait for one to finish or cancel one, then try again.",
                    retry_after_s=defaults.LIMIT_RETRY_AFTER_S,
                )
            waiting = 0 if system else waiting_jobs
            if waiting + cost > self.user_queued_limit:
                session.rollback()
                raise LimitReached(
                    submitrules.queued_limit_message(waiting, cost, self.user_queued_limit),
                    retry_after_s=defaults.LIMIT_RETRY_AFTER_S,
                )
            status = Status.SCHEDULED if scheduled else Status.QUEUED
            held = not scheduled and fairshare.holds(*queue_state)  # its turn comes later (fair share)
            row = {
                "id": new_id(),
                "user_id": user.id,
                "type": spec.name,
                "status": status.value,
                "progress": 0,
                "message": "Scheduled" if scheduled else "Queued",
                "queue": queue,
                "attempts": 0,
                "max_attempts": spec.retry.max_attempts,
                "params": clean,
                "result": None,
                "error": None,
                "idempotency_key": idempotency_key,
                "debounce_key": debounce.key if debounce else None,
                "unique_key": unique_key,
                "concurrency_key": concurrency_key,
                "concurrency_limit": spec.concurrency.limit if spec.concurrency else None,
                "parent_id": parent_id,
                "created_at": now,
                "scheduled_at": due if scheduled else None,
                "started_at": None,
                "finished_at": None,
                "updated_at": now,
                "held": held,
            }
            self.machine.submit(conn, row)
            session.commit()
            data = job_to_dict(SimpleNamespace(**row))  # type: ignore[arg-type]
        hooks.run_before_enqueue(data)
        if held:
            fairshare.after_hold(self.machine, queue)
        elif not scheduled:
            self.machine.send(data)  # the gate's test was made above, in the transaction
        self.publisher.job_update(data, user.id)
        return data, True

    def send(self, job: dict[str, Any]) -> bool:
        """Send the job's message (or hold it for its owner's fair-share turn: the machine's gate); a broker
        outage flags it for the maintenance loop (never lost)."""
        return self.machine.enqueue(job)

    @staticmethod
    def _active_unique(session: Session, user_id: int, job_type: str, unique_key: str) -> Job | None:
        return session.scalars(
            select(Job).where(
                Job.user_id == user_id,
                Job.type == job_type,
                Job.unique_key == unique_key,
                Job.status.in_([s.value for s in ACTIVE]),
            )
        ).first()

    # ----- canceling -----------------------------------------------------------------------------

    def cancel(self, user: User, job_id: str) -> dict[str, Any]:
        """Not started: canceled at once. Running: flagged; the worker stops it at its next step."""
        with self._sessions() as session:
            job = self._visible(session, user, job_id)
        if Status(job.status) in FINISHED:
            raise Conflict(f"The job has already finished ({job.status}).")
        moved = self.machine.stop(job_id, f"Canceled by {user.email}")
        if moved is not None:
            return job_to_dict(moved)
        with self._sessions() as session:  # it moved on meanwhile (or a cancel was already asked)
            job = self._visible(session, user, job_id)
        if job.status == Status.RUNNING.value:
            return job_to_dict(job)
        raise Conflict(f"The job has already finished ({job.status}).")
