"""One prepared statement per move, built once at import from the move's entry in the table.

Typed bind parameters (``b_*``) and cached compilation: executing one costs no statement building, and
each is a conditional ``UPDATE .. WHERE id = :b_id AND status IN (<the move's sources>) .. RETURNING``,
so a job not in a source status (or, for a worker's writes, not in the attempt the worker claimed)
matches no row and nothing changes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Update, bindparam, delete, func, insert, select, update

from shared.jobstate.table import MOVES
from shared.models import Job, JobAttempt, JobEvent, JobSlot
from shared.states import FINISHED, Status

JOBS = Job.__table__
EVENTS = JobEvent.__table__
ATTEMPTS = JobAttempt.__table__
SLOTS = JobSlot.__table__


def _p(name: str, column: Any) -> Any:
    return bindparam(f"b_{name}", type_=column.type)


NOW = _p("now", JOBS.c.updated_at)
MESSAGE = _p("message", JOBS.c.message)
ERROR = _p("error", JOBS.c.error)
DUE = _p("due", JOBS.c.scheduled_at)
# Fencing: a worker's writes name the attempt it runs, so the writes of an attempt that was recovered
# (its worker partitioned or frozen, the job re-run elsewhere) match no row and change nothing.
FENCE = JOBS.c.attempts == _p("attempt", JOBS.c.attempts)
# A lost process's job: only while the same worker and pid still hold it (a re-claimed job is left alone).
HOLDER = (JOBS.c.worker == _p("worker", JOBS.c.worker)) & JOBS.c.worker_pid.is_not_distinct_from(
    _p("pid", JOBS.c.worker_pid)
)
CANCEL_ASKED = JOBS.c.cancel_requested.is_(True)
SLOTS_HELD = (
    select(func.count()).select_from(SLOTS).where(SLOTS.c.key == JOBS.c.concurrency_key).scalar_subquery()
)


def _update(move: str, *where: Any, **values: Any) -> Update:
    entry = MOVES[move]
    target = {"status": entry.target.value} if entry.target is not None else {}
    if Status.QUEUED in entry.sources and entry.target not in (None, Status.QUEUED):
        target["held"] = False  # fair share's flag means something only while the job is queued
    return (
        update(JOBS)
        .where(JOBS.c.id == _p("id", JOBS.c.id), JOBS.c.status.in_([s.value for s in entry.sources]), *where)
        .values(**target, updated_at=NOW, **values)
        .returning(*JOBS.c)
    )


_FINISHED = {"finished_at": NOW}
_STARTED = {
    "attempts": JOBS.c.attempts + 1,
    "started_at": NOW,
    "finished_at": None,
    "worker": _p("worker", JOBS.c.worker),
    "worker_pid": _p("pid", JOBS.c.worker_pid),
    "message": "Started",
}
_GIVEN_BACK = {"attempts": JOBS.c.attempts - 1, "message": MESSAGE}
# A job that leaves ``running`` with progress reports still held (``Tx.move``'s ``before``) keeps the last
# one's percentage, as it would had the reports been written before the move (left out: unchanged).
HELD_PROGRESS = bindparam("b_held_progress", None, type_=JOBS.c.progress.type)
_LAST_REPORT = {"progress": func.coalesce(HELD_PROGRESS, JOBS.c.progress)}

STATEMENTS: dict[str, Update] = {
    "claim": _update("claim", JOBS.c.concurrency_key.is_(None), **_STARTED),
    # A job with a concurrency key starts only while its key has a free slot (taken in the same commit).
    "claim_keyed": _update(
        "claim",
        JOBS.c.concurrency_key.is_not(None),
        SLOTS_HELD < func.coalesce(JOBS.c.concurrency_limit, 1),
        **_STARTED,
    ),
    "block": _update("block", JOBS.c.concurrency_key.is_not(None), message="Waiting for a free slot"),
    "defer": _update("defer", needs_dispatch=True, scheduled_at=DUE, message=MESSAGE),
    "wake": _update("wake", message="Queued (slot free)"),
    # Still due when it is written: a debounced repeat may have moved the run time since the sweep's read.
    "release_due": _update("release_due", JOBS.c.scheduled_at <= NOW, message="Queued"),
    # A workflow step waits on its dependencies with its concurrency key on its step row: it gets it back.
    "release_step": _update(
        "release_step",
        JOBS.c.workflow_id.is_not(None),
        concurrency_key=_p("key", JOBS.c.concurrency_key),
        message=MESSAGE,
    ),
    "debounce": _update(
        "debounce",
        params=_p("params", JOBS.c.params),
        concurrency_key=_p("key", JOBS.c.concurrency_key),
        scheduled_at=DUE,
        message=MESSAGE,
    ),
    "report": _update("report", FENCE, progress=_p("progress", JOBS.c.progress), message=MESSAGE),
    "request_cancel": _update(
        "request_cancel",
        JOBS.c.cancel_requested.is_not(True),
        cancel_requested=True,
        cancel_requested_at=NOW,
        message=MESSAGE,
    ),
    "succeed": _update(
        "succeed",
        FENCE,
        progress=100,
        message=MESSAGE,
        result=_p("result", JOBS.c.result),
        error=None,
        **_FINISHED,
    ),
    "retry_later": _update(
        "retry_later",
        FENCE,
        JOBS.c.attempts < JOBS.c.max_attempts,
        error=ERROR,
        scheduled_at=DUE,
        message=MESSAGE,
        **_LAST_REPORT,
    ),
    "fail_attempt": _update("fail_attempt", FENCE, error=ERROR, message=MESSAGE, **_FINISHED, **_LAST_REPORT),
    "cancel": _update("cancel", FENCE, message=MESSAGE, **_FINISHED, **_LAST_REPORT),
    "requeue": _update("requeue", FENCE, **_GIVEN_BACK, **_LAST_REPORT),
    "postpone": _update(
        "postpone", FENCE, needs_dispatch=True, scheduled_at=DUE, **_GIVEN_BACK, **_LAST_REPORT
    ),
    "recover": _update(
        "recover",
        HOLDER,
        JOBS.c.attempts < JOBS.c.max_attempts,
        JOBS.c.cancel_requested.is_not(True),
        error=ERROR,
        message=MESSAGE,
    ),
    "recover_spent": _update("recover_spent", HOLDER, error=ERROR, message=MESSAGE, **_FINISHED),
    "recover_canceled": _update("recover_canceled", HOLDER, message=MESSAGE, **_FINISHED),
    "recover_canceled_asked": _update("recover_canceled", HOLDER, CANCEL_ASKED, message=MESSAGE, **_FINISHED),
    "reap_stale": _update(
        "reap_stale",
        JOBS.c.updated_at < _p("silent_since", JOBS.c.updated_at),
        error=ERROR,
        message=MESSAGE,
        **_FINISHED,
    ),
    "cancel_waiting": _update("cancel_waiting", message=MESSAGE, **_FINISHED),
    "revoke": _update("revoke", message=MESSAGE, **_FINISHED),
    "retry_dead": _update(
        "retry_dead",
        JOBS.c.discarded_at.is_(None),
        max_attempts=JOBS.c.attempts + _p("budget", JOBS.c.max_attempts),
        finished_at=None,
        error=None,
        progress=0,
        cancel_requested=False,
        message=MESSAGE,
    ),
    "discard_dead": _update("discard_dead", JOBS.c.discarded_at.is_(None), discarded_at=NOW, message=MESSAGE),
}

# The statement of a move that is not named after it (a variant of the move).
MOVE_OF: dict[str, str] = {name: name for name in STATEMENTS} | {
    "claim_keyed": "claim",
    "recover_canceled_asked": "recover_canceled",
}
# Statements whose move ends the job (the after-final hooks run for the jobs they move).
ENDS_JOB = frozenset(name for name, move in MOVE_OF.items() if MOVES[move].target in FINISHED)

# The owner's scheduled job of a type with a debounce key (at most one: uq_jobs_debounce_scheduled).
DEBOUNCED = select(JOBS.c.id).where(
    JOBS.c.user_id == _p("user", JOBS.c.user_id),
    JOBS.c.type == _p("type", JOBS.c.type),
    JOBS.c.debounce_key == _p("key", JOBS.c.debounce_key),
    JOBS.c.status.in_([s.value for s in MOVES["debounce"].sources]),
)
INSERT_JOB = insert(JOBS)
ADD_EVENT = insert(EVENTS)
OPEN_ATTEMPT = insert(ATTEMPTS)
CLOSE_ATTEMPT = (
    update(ATTEMPTS)
    .where(
        ATTEMPTS.c.job_id == _p("job", ATTEMPTS.c.job_id),
        ATTEMPTS.c.number == _p("number", ATTEMPTS.c.number),
        ATTEMPTS.c.finished_at.is_(None),
    )
    .values(
        finished_at=_p("now", ATTEMPTS.c.finished_at),
        outcome=_p("outcome", ATTEMPTS.c.outcome),
        error_type=_p("error_type", ATTEMPTS.c.error_type),
        error_message=_p("error_message", ATTEMPTS.c.error_message),
        traceback=_p("traceback", ATTEMPTS.c.traceback),
    )
)
HELD_SLOTS = select(SLOTS.c.slot).where(SLOTS.c.key == _p("key", SLOTS.c.key))
TAKE_SLOT = insert(SLOTS)
FREE_SLOT = delete(SLOTS).where(SLOTS.c.job_id == _p("job", SLOTS.c.job_id))
# Whether a job was sent to the broker: flagged on a broker error, cleared once the message is on it.
SET_UNSENT = (
    update(JOBS)
    .where(JOBS.c.id == _p("id", JOBS.c.id))
    .values(needs_dispatch=_p("unsent", JOBS.c.needs_dispatch))
)
SHOULD_STOP = select(JOBS.c.cancel_requested, JOBS.c.status).where(JOBS.c.id == _p("id", JOBS.c.id))
