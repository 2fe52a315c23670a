"""The three writes nearly every job makes — claim, progress, succeed — on the fast path.

Each is a statement built once at import (typed bind parameters, cached compilation) and executed on a
pooled Connection: no Session, no unit of work, no statement building per call. Measured in
BENCHMARKS.md (P1): the same claim + succeed cost ~0.9 ms of CPU this way against ~3.7 ms through a
Session. Semantics are those of ``shared.transitions.transition``: one conditional UPDATE .. RETURNING
plus its event, in one transaction.

Jobs with a concurrency key are left to the general path in ``shared.lifecycle`` (their slot is taken
and released in the same transaction), so every statement here also requires ``concurrency_key IS
NULL``; a miss is either "not this worker's to run" or "take the general path", and the caller tries
the general path, which decides.
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update

from shared.db import write_gate
from shared.models import Job, JobAttempt, JobEvent
from shared.states import Status
from shared.transitions import MAX_MESSAGE_CHARS

JOBS = Job.__table__
EVENTS = JobEvent.__table__
ATTEMPTS = JobAttempt.__table__

_NOW = bindparam("b_now", type_=JOBS.c.updated_at.type)
_ID = bindparam("b_id", type_=JOBS.c.id.type)

CLAIM = (
    update(JOBS)
    .where(JOBS.c.id == _ID, JOBS.c.status == Status.QUEUED.value, JOBS.c.concurrency_key.is_(None))
    .values(
        status=Status.RUNNING.value,
        attempts=JOBS.c.attempts + 1,
        started_at=_NOW,
        finished_at=None,
        worker=bindparam("b_worker", type_=JOBS.c.worker.type),
        worker_pid=bindparam("b_pid", type_=JOBS.c.worker_pid.type),
        message="Started",
        updated_at=_NOW,
    )
    .returning(*JOBS.c)
)
_ATTEMPT = bindparam("b_attempt", type_=JOBS.c.attempts.type)
# Fencing: a worker's writes name the attempt it runs, so the writes of an attempt that was recovered
# (its worker partitioned or frozen, the job re-run elsewhere) match no row and change nothing.
PROGRESS = (
    update(JOBS)
    .where(JOBS.c.id == _ID, JOBS.c.status == Status.RUNNING.value, JOBS.c.attempts == _ATTEMPT)
    .values(
        progress=bindparam("b_progress", type_=JOBS.c.progress.type),
        message=bindparam("b_message", type_=JOBS.c.message.type),
        updated_at=_NOW,
    )
    .returning(*JOBS.c)
)
SUCCEED = (
    update(JOBS)
    .where(
        JOBS.c.id == _ID,
        JOBS.c.status == Status.RUNNING.value,
        JOBS.c.attempts == _ATTEMPT,
        JOBS.c.concurrency_key.is_(None),
    )
    .values(
        status=Status.SUCCEEDED.value,
        progress=100,
        message=bindparam("b_message", type_=JOBS.c.message.type),
        result=bindparam("b_result", type_=JOBS.c.result.type),
        error=None,
        finished_at=_NOW,
        updated_at=_NOW,
    )
    .returning(*JOBS.c)
)
SHOULD_STOP = select(JOBS.c.cancel_requested, JOBS.c.status).where(JOBS.c.id == _ID)
ADD_EVENT = insert(EVENTS)
OPEN_ATTEMPT = insert(ATTEMPTS)
CLOSE_ATTEMPT = (
    update(ATTEMPTS)
    .where(
        ATTEMPTS.c.job_id == bindparam("b_job", type_=ATTEMPTS.c.job_id.type),
        ATTEMPTS.c.number == bindparam("b_number", type_=ATTEMPTS.c.number.type),
        ATTEMPTS.c.finished_at.is_(None),
    )
    .values(finished_at=bindparam("b_now", type_=ATTEMPTS.c.finished_at.type), outcome="succeeded")
)


class HotPath:
    """Claim, progress and succeed for one database, each one short transaction."""

    def __init__(self, engine: Engine, database_url: str) -> None:
        self._engine = engine
        self._url = database_url

    def _write(
        self,
        stmt: Any,
        params: dict[str, Any],
        now: datetime,
        before: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> Job | None:
        """The transition, then the held progress events ``before`` its own event, in one transaction."""
        with write_gate(self._url), self._engine.begin() as conn:
            row = conn.execute(stmt, params).mappings().one_or_none()
            if row is None:
                return None
            if before:
                conn.execute(ADD_EVENT, before)
            conn.execute(
                ADD_EVENT,
                {
                    "job_id": row["id"],
                    "status": row["status"],
                    "progress": row["progress"],
                    "message": row["message"],
                    "created_at": now,
                },
            )
            if "open_attempt" in extra:
                conn.execute(
                    OPEN_ATTEMPT,
                    {
                        "job_id": row["id"],
                        "number": row["attempts"],
                        "worker": extra["open_attempt"],
                        "started_at": now,
                    },
                )
            if "close_attempt" in extra:
                conn.execute(
                    CLOSE_ATTEMPT, {"b_job": row["id"], "b_number": extra["close_attempt"], "b_now": now}
                )
        return SimpleNamespace(**row)  # type: ignore[return-value]

    def claim(self, job_id: str, worker: str, pid: int | None, now: datetime) -> Job | None:
        """queued -> running for a job without a concurrency key; None otherwise (see the module doc)."""
        params = {"b_id": job_id, "b_now": now, "b_worker": worker, "b_pid": pid}
        return self._write(CLAIM, params, now, open_attempt=worker)

    def progress(
        self,
        job_id: str,
        attempt: int,
        percent: int,
        message: str,
        now: datetime,
        before: list[dict[str, Any]],
    ) -> Job | None:
        """The running job's progress (after its held reports); None when it is not running any more (or
        not this attempt: it was recovered and runs again)."""
        params = {
            "b_id": job_id,
            "b_attempt": attempt,
            "b_now": now,
            "b_progress": percent,
            "b_message": message[:MAX_MESSAGE_CHARS],
        }
        return self._write(PROGRESS, params, now, before)

    def succeed(
        self,
        job_id: str,
        attempt: int,
        result: Any,
        message: str,
        now: datetime,
        before: list[dict[str, Any]],
    ) -> Job | None:
        """running -> succeeded for a job without a concurrency key, closing its attempt."""
        params = {
            "b_id": job_id,
            "b_attempt": attempt,
            "b_now": now,
            "b_message": message[:MAX_MESSAGE_CHARS],
            "b_result": result,
        }
        return self._write(SUCCEED, params, now, before, close_attempt=attempt)

    def should_stop(self, job_id: str) -> bool:
        """Whether a running job's body should stop: a cancel was asked, or it is not running any more.

        A read (no write lock, no commit): what a report held between writes costs."""
        with self._engine.connect() as conn:
            row = conn.execute(SHOULD_STOP, {"b_id": job_id}).first()
        return row is None or bool(row.cancel_requested) or row.status != Status.RUNNING.value

    def add_events(self, events: list[dict[str, Any]]) -> None:
        """Held progress events of a job whose state change took the general path."""
        if events:
            with write_gate(self._url), self._engine.begin() as conn:
                conn.execute(ADD_EVENT, events)
