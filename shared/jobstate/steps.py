"""The moves as steps: each a function of one transaction (``Tx``) that returns the moved row or None.

A step reads nothing outside its transaction and decides only from the row its statement returns, so
a caller can hand the machine several steps, of several jobs, for one commit (``Machine.commit``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from shared.jobstate import statements as st
from shared.jobstate.statements import JOBS, SLOTS
from shared.jobstate.table import MOVES
from shared.jobstate.tx import Held, Row, Tx
from shared.states import Status

Step = Callable[[Tx], Row | None]
NOTHING_HELD: Held = ((), ())
STOPPABLE = frozenset({*MOVES["cancel_waiting"].sources, *MOVES["request_cancel"].sources})


def claim(job_id: str, worker: str, pid: int | None, publish: bool = True) -> Step:
    """queued -> running, counting the attempt and opening its row; a job whose concurrency key has no
    free slot goes to ``blocked`` instead (``wake`` queues it again when one frees)."""

    def step(tx: Tx) -> Row | None:
        holder = {"worker": worker, "pid": pid}
        row = tx.move("claim", job_id, publish=publish, **holder)
        if row is None:
            row = tx.move("claim_keyed", job_id, publish=publish, **holder)
            if row is None:
                return tx.move("block", job_id)
            tx.take_slot(row)
        tx.open_attempt(row)
        return row

    return step


def block(job_id: str) -> Step:
    return lambda tx: tx.move("block", job_id)


def report(job_id: str, attempt: int, percent: int, message: str, before: Held = NOTHING_HELD) -> Step:
    """The running attempt's progress (published by the caller's progress buffer)."""
    return lambda tx: tx.move(
        "report", job_id, publish=False, before=before, attempt=attempt, progress=percent, message=message
    )


def succeed(job_id: str, attempt: int, result: Any, message: str, before: Held = NOTHING_HELD) -> Step:
    def step(tx: Tx) -> Row | None:
        row = tx.move("succeed", job_id, before=before, attempt=attempt, result=result, message=message)
        tx.leave_running(row, attempt, "succeeded")
        return row

    return step


def fail_attempt(
    job_id: str,
    attempt: int,
    error: dict[str, str],
    trace: str | None,
    retry_at: datetime | None,
    before: Held = NOTHING_HELD,
) -> Step:
    """running -> retrying (due at ``retry_at``) while attempts are left, else -> failed (a dead letter)."""

    def step(tx: Tx) -> Row | None:
        row = None
        if retry_at is not None:
            message = f"Attempt {attempt} failed ({error['type']}); next attempt at {retry_at:%H:%M:%S} UTC"
            row = tx.move(
                "retry_later",
                job_id,
                before=before,
                attempt=attempt,
                error=error,
                due=retry_at,
                message=message,
            )
        if row is None:
            message = f"Failed: {error['type']}: {error['message']}"
            row = tx.move(
                "fail_attempt", job_id, before=before, attempt=attempt, error=error, message=message
            )
        tx.leave_running(row, attempt, "failed", error, trace)
        return row

    return step


def cancel(job_id: str, attempt: int, message: str = "Canceled", before: Held = NOTHING_HELD) -> Step:
    """running -> canceled: the body stopped at a cancel request (or its process was ended for it)."""

    def step(tx: Tx) -> Row | None:
        row = tx.move("cancel", job_id, before=before, attempt=attempt, message=message)
        tx.leave_running(row, attempt, "canceled")
        return row

    return step


def give_back(
    job_id: str, attempt: int, reason: str, due: datetime | None = None, before: Held = NOTHING_HELD
) -> Step:
    """running -> queued with the attempt given back: ``requeue`` (sent at once: the worker is stopping),
    or with ``due``, ``postpone`` (sent again by the maintenance loop once due: a rate limit)."""

    def step(tx: Tx) -> Row | None:
        if due is None:
            row = tx.move("requeue", job_id, before=before, attempt=attempt, message=reason)
            if row is not None:
                tx.effects.send.append(row)
        else:
            row = tx.move("postpone", job_id, before=before, attempt=attempt, message=reason, due=due)
        tx.leave_running(row, attempt, "requeued" if due is None else "postponed")
        return row

    return step


def defer(job_id: str, due: datetime, message: str) -> Step:
    return lambda tx: tx.move("defer", job_id, due=due, message=message)


def request_cancel(job_id: str, message: str = "Cancel requested") -> Step:
    return lambda tx: tx.move("request_cancel", job_id, message=message)


def recover(job_id: str, worker: str, pid: int | None, reason: str, revoked: bool = False) -> Step:
    """A running job whose process died: queued again, or failed once its attempts are spent; canceled
    when a cancel was asked or its Celery task was revoked (its next message would be dropped). The lost
    attempt counts, so a job that kills its worker every time ends ``failed`` instead of looping."""

    def step(tx: Tx) -> Row | None:
        holder = {"worker": worker, "pid": pid}
        error = {"type": "WorkerLost", "message": reason}
        if revoked:  # Celery ended the process on purpose: the attempt was canceled, not lost
            row = tx.move("recover_canceled", job_id, message="Canceled through Celery (revoke)", **holder)
            tx.leave_running(row, row.attempts if row else 0, "canceled")
            return row
        row = tx.move("recover", job_id, error=error, message=f"Requeued: {reason}", **holder)
        if row is not None:
            tx.effects.send.append(row)
        else:
            row = tx.move("recover_canceled_asked", job_id, message="Canceled", **holder) or tx.move(
                "recover_spent", job_id, error=error, message=f"Failed: {reason}", **holder
            )
        tx.leave_running(row, row.attempts if row else 0, "lost", error)
        return row

    return step


def reap_stale(job_id: str, silent_since: datetime, message: str) -> Step:
    """running, without an update since ``silent_since`` -> failed (``StaleJob``), its attempt closed
    and its slot freed as any other way out of ``running``."""

    def step(tx: Tx) -> Row | None:
        error = {"type": "StaleJob", "message": message}
        row = tx.move(
            "reap_stale",
            job_id,
            silent_since=silent_since,
            error=error,
            message=f"Failed: StaleJob: {message}",
        )
        tx.leave_running(row, row.attempts if row else 0, "failed", error)
        return row

    return step


def cancel_waiting(job_id: str, message: str) -> Step:
    """Not started (scheduled, queued, blocked, retrying) -> canceled: nothing runs, no worker needed."""

    def step(tx: Tx) -> Row | None:
        row = tx.move("cancel_waiting", job_id, message=message)
        tx.leave_running(row, row.attempts if row else 0, "canceled")  # a queued job of a key held room
        return row

    return step


def revoke(job_id: str, process_ended: bool, how: str) -> Step:
    """A Celery revoke of the job's task (its id is the job id): the job never runs again.

    Not started: canceled. Running: canceled when its process was ended (a revoke with terminate), its
    attempt closed and slot freed; else asked to stop at its next progress point, as a user's cancel is.
    """

    def step(tx: Tx) -> Row | None:
        if process_ended:
            row = tx.move("revoke", job_id, message=f"Canceled through Celery ({how})")
            tx.leave_running(row, row.attempts if row else 0, "canceled")
            return row
        return stop(job_id, f"Canceled through Celery ({how})", f"Cancel requested through Celery ({how})")(
            tx
        )

    return step


def stop(job_id: str, canceled: str, requested: str = "Cancel requested") -> Step:
    """Not started: canceled (``canceled`` its message). Running: asked to stop at its next progress point
    (``requested``); the maintenance loop ends its process after the cancel grace period if it does not."""
    return lambda tx: (
        cancel_waiting(job_id, canceled)(tx) or tx.move("request_cancel", job_id, message=requested)
    )


def release_due(job_id: str) -> Step:
    """scheduled or retrying, due -> queued, and sent."""

    def step(tx: Tx) -> Row | None:
        row = tx.move("release_due", job_id)
        if row is not None:
            tx.effects.send.append(row)
        return row

    return step


def release_step(job_id: str, concurrency_key: str | None, message: str) -> Step:
    """A workflow step whose dependencies are done: blocked -> queued with its concurrency key, and sent."""

    def step(tx: Tx) -> Row | None:
        row = tx.move("release_step", job_id, key=concurrency_key, message=message)
        if row is not None:
            tx.effects.send.append(row)
        return row

    return step


def debounce(
    user_id: int,
    job_type: str,
    key: str,
    params: dict[str, Any],
    concurrency_key: str | None,
    due: datetime,
    message: str,
) -> Step:
    """The owner's scheduled job of ``job_type`` with the debounce ``key`` stays scheduled with ``params``
    and run time ``due``; None when there is none (it was released or canceled: a new one is created). Its
    update is the caller's to publish (it answers the submit with it)."""

    def step(tx: Tx) -> Row | None:
        found = {"b_user": user_id, "b_type": job_type, "b_key": key}
        job_id = tx.conn.execute(st.DEBOUNCED, found).scalar()
        if job_id is None:
            return None
        return tx.move(
            "debounce", job_id, publish=False, params=params, key=concurrency_key, due=due, message=message
        )

    return step


def wake(key: str) -> Step:
    """The oldest blocked job of ``key`` -> queued (and sent) while the key has room for it: its limit
    minus the slots held minus the jobs already queued for it (they take a slot when claimed)."""

    def step(tx: Tx) -> Row | None:
        keyed = JOBS.c.concurrency_key == key
        candidate = tx.conn.execute(
            select(JOBS.c.id, JOBS.c.concurrency_limit)
            .where(keyed, JOBS.c.status == Status.BLOCKED.value)
            .order_by(JOBS.c.created_at)
            .limit(1)
        ).first()
        if candidate is None:
            return None
        queued = select(func.count()).select_from(JOBS).where(keyed, JOBS.c.status == Status.QUEUED.value)
        held = select(func.count()).select_from(SLOTS).where(SLOTS.c.key == key)
        taken = tx.conn.execute(select(queued.scalar_subquery() + held.scalar_subquery())).scalar_one()
        if taken >= (candidate.concurrency_limit or 1):
            return None
        row = tx.move("wake", candidate.id)
        if row is not None:
            tx.effects.send.append(row)
        return row

    return step


def retry_dead(job_id: str, budget: int) -> Step:
    """failed (in the dead-letter set) -> queued with ``budget`` more attempts; earlier attempts stay."""

    def step(tx: Tx) -> Row | None:
        row = tx.move("retry_dead", job_id, budget=budget, message="Retried by an operator")
        if row is not None:
            tx.effects.send.append(row)
        return row

    return step


def discard_dead(job_id: str) -> Step:
    """Out of the dead-letter set; the job stays ``failed`` in the history."""
    return lambda tx: tx.move("discard_dead", job_id, message="Discarded by an operator")
