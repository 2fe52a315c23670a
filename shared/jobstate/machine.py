"""The job state machine: every write of a job's status, attempts, events and slots goes through here.

Each named method is one move (or a choice between the moves of one event, e.g. ``recover``) of the
table in ``shared.jobstate.table``, run as its prepared statement in one transaction with its event,
attempt and slot rows; it returns the moved row, or None when the job was not in a source status (or,
for a worker's writes, not in the attempt it claimed). What must happen after the commit — publish the
updates, send messages through the outage-safe path, wake the keys whose slot freed — is collected while
the transaction runs and carried out in one place, ``carry_out``: there too the hooks registered with
``after_final`` learn which jobs ended (the composition root registers the workflows' settling), and a
message goes out through the machine's send ``gate`` when it has one (fair share may hold it back).

Batching: ``commit(*steps)`` runs several steps (``shared.jobstate.steps``, of one job or many) in one
transaction and carries out their effects once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, or_, select
from sqlalchemy.exc import IntegrityError

from shared import defaults
from shared.db import get_engine, rerun_if_rolled_back, write_gate
from shared.dispatch import Dispatcher
from shared.jobstate import statements as st
from shared.jobstate import steps
from shared.jobstate.statements import JOBS
from shared.jobstate.steps import NOTHING_HELD, Step
from shared.jobstate.table import MOVES
from shared.jobstate.tx import Effects, Held, Row, Tx
from shared.models import utcnow
from shared.publisher import Publisher
from shared.serialize import job_to_dict
from shared.states import FINISHED, Status

log = logging.getLogger("questboard.lifecycle")
CREATED = {m.target.value for m in MOVES.values() if not m.sources and m.target is not None}

# How a job's message goes out: given the machine and the job, send it (``Machine.send``) or hold it back;
# False only when the broker failed.
Gate = Callable[["Machine", Row | dict[str, Any]], bool]
# Told the ids of jobs that became final, after their commit.
AfterFinal = Callable[[list[str]], None]


class Machine:
    """The moves of jobs in one database, with their publishing and dispatch."""

    def __init__(
        self, database_url: str, publisher: Publisher, dispatcher: Dispatcher, gate: Gate | None = None
    ) -> None:
        self.url = database_url
        self.engine = get_engine(database_url)
        self.publisher = publisher
        self.dispatcher = dispatcher
        self._gate = gate
        self._after_final: list[tuple[AfterFinal, bool]] = []

    def after_final(self, hook: AfterFinal, steps_only: bool = False) -> None:
        """Call ``hook`` with the ids of the jobs this machine's moves ended, after their commit (with
        ``steps_only``, of those that are a workflow's steps, as the row the move returned says; not
        called when there is none). An error in it is logged, never raised: the moves stand."""
        self._after_final.append((hook, steps_only))

    # ----- the write path ------------------------------------------------------------------------

    def write(self, *todo: Step, now: datetime | None = None) -> tuple[list[Row | None], Effects]:
        """Run the steps in one transaction; their rows, and the effects the caller must carry out.

        Two claims racing for the last slot of a key on PostgreSQL: the loser's commit fails on the
        slots' unique constraint and is run again (it then sees the slot taken). A transaction the
        database rolled back as a deadlock's victim is run again too (``shared.db.rolled_back``)."""

        def once() -> tuple[list[Row | None], Effects]:
            with write_gate(self.url), self.engine.begin() as conn:
                tx = Tx(conn, now or utcnow())
                return [step(tx) for step in todo], tx.effects

        for tries_left in range(defaults.SLOT_RACE_RETRIES, -1, -1):
            try:
                return rerun_if_rolled_back(once, "a transaction")
            except IntegrityError:
                if not tries_left:
                    raise
        raise AssertionError("unreachable")

    def commit(self, *todo: Step, now: datetime | None = None) -> list[Row | None]:
        """Run the steps in one transaction, then carry out their effects; their rows, in order."""
        rows, effects = self.write(*todo, now=now)
        self.carry_out(effects)
        return rows

    def _one(self, step: Step, now: datetime | None = None) -> Row | None:
        return self.commit(step, now=now)[0]

    def carry_out(self, effects: Effects) -> None:
        """After a commit: send, wake, the after-final hooks, then publish (one round trip per owner)."""
        self.follow_up(effects)
        self.publish(effects)

    def follow_up(self, effects: Effects) -> None:
        """The effects that change what runs next: messages sent, slots' waiters woken, after-final hooks."""
        # Each effect on its own: one that fails (the gate's read, a wake's write) must not cost the
        # other jobs of the same commit theirs.
        for row in effects.send:
            try:
                self.enqueue(row)
            except Exception:  # the gate could not decide: send it (a broker error flags it for resending)
                job = {"job_id": _message_fields(row)[0]}
                log.exception("the send gate failed; sending at once", extra=job)
                try:
                    self.send(row)
                except Exception:  # not even flagged: the lost-message sweep re-sends queued jobs
                    log.exception("sending a committed job failed", extra=job)
        for key in dict.fromkeys(effects.wake):
            try:
                self.wake(key)
            except Exception:  # the maintenance pass wakes every key's waiters too (wake_all)
                log.exception("waking a key's waiters failed", extra={"key": key})
        for hook, steps_only in self._after_final:
            ended = effects.final_steps if steps_only else effects.final
            if not ended:
                continue
            try:
                hook(ended)
            except Exception:  # the moves are committed; whoever needs the hook has a sweep behind it
                log.exception("an after-final hook failed", extra={"job_ids": ended})

    def publish(self, effects: Effects) -> None:
        """The live updates of the committed moves: a notification, the database holds the state."""
        batch: list[dict[str, Any]] = []
        owner: int | None = None
        for update, user_id in effects.publish:
            if batch and user_id != owner:
                self.publisher.job_updates(batch, owner)  # type: ignore[arg-type]
                batch = []
            batch.append(update if isinstance(update, dict) else job_to_dict(update))
            owner = user_id
        if batch:
            self.publisher.job_updates(batch, owner)  # type: ignore[arg-type]

    def enqueue(self, job: Row | dict[str, Any]) -> bool:
        """The job's message goes out: through the gate when the machine has one, else ``send`` at once."""
        return self._gate(self, job) if self._gate is not None else self.send(job)

    def send(self, job: Row | dict[str, Any]) -> bool:
        """Send the job's message; on a broker error flag it for the maintenance loop instead of losing it."""
        job_id, job_type, queue = _message_fields(job)
        try:
            self.dispatcher.send(job_id, job_type, queue)
            return True
        except Exception as exc:  # any broker error: the job is safe in the database and is sent later
            log.warning("dispatch failed; will send again", extra={"job_id": job_id, "error": repr(exc)})
            self.set_unsent(job_id, True)
            return False

    def set_unsent(self, job_id: str, unsent: bool) -> None:
        """Flag (or clear, once its message is on the broker) a job whose message must be sent again."""
        with write_gate(self.url), self.engine.begin() as conn:
            conn.execute(st.SET_UNSENT, {"b_id": job_id, "b_unsent": unsent})

    # ----- the moves -----------------------------------------------------------------------------

    def submit(self, conn: Connection, *rows: dict[str, Any]) -> None:
        """New jobs (``queued``, ``scheduled``, or ``blocked`` workflow steps) and their first events, in
        the caller's transaction (the submit's limits are checked under its owner's lock there); the
        caller publishes and sends."""
        assert all(row["status"] in CREATED for row in rows), [row["status"] for row in rows]
        if rows:
            Tx(conn, rows[0]["created_at"]).insert_jobs(rows)

    def debounce(
        self,
        conn: Connection,
        now: datetime,
        user_id: int,
        job_type: str,
        key: str,
        params: dict[str, Any],
        concurrency_key: str | None,
        due: datetime,
        message: str,
    ) -> Row | None:
        """A repeat submit moves the owner's scheduled job with the debounce ``key`` (see
        ``steps.debounce``), in the caller's transaction (under the submit's lock); the caller commits
        and publishes."""
        return steps.debounce(user_id, job_type, key, params, concurrency_key, due, message)(Tx(conn, now))

    def claim(
        self, job_id: str, worker: str, pid: int | None, now: datetime | None = None, publish: bool = True
    ) -> Row | None:
        try:
            return self._one(steps.claim(job_id, worker, pid, publish), now)
        except IntegrityError:  # lost the race for the key's slot every time: wait for a free one
            return self._one(steps.block(job_id))

    def report(
        self,
        job_id: str,
        attempt: int,
        percent: int,
        message: str,
        now: datetime,
        before: Held = NOTHING_HELD,
    ) -> Row | None:
        return self._one(steps.report(job_id, attempt, percent, message, before), now)

    def succeed(self, job_id: str, attempt: int, result: Any, message: str = "Done") -> Row | None:
        return self._one(steps.succeed(job_id, attempt, result, message))

    def fail_attempt(
        self,
        job_id: str,
        attempt: int,
        error: dict[str, str],
        trace: str | None = None,
        retry_at: datetime | None = None,
    ) -> Row | None:
        return self._one(steps.fail_attempt(job_id, attempt, error, trace, retry_at))

    def cancel(self, job_id: str, attempt: int, message: str = "Canceled") -> Row | None:
        return self._one(steps.cancel(job_id, attempt, message))

    def requeue(self, job_id: str, attempt: int, reason: str) -> Row | None:
        return self._one(steps.give_back(job_id, attempt, reason))

    def postpone(self, job_id: str, attempt: int, delay_s: float, reason: str) -> Row | None:
        now = utcnow()
        return self._one(steps.give_back(job_id, attempt, reason, now + timedelta(seconds=delay_s)), now)

    def defer(self, job_id: str, delay_s: float, message: str) -> Row | None:
        now = utcnow()
        return self._one(steps.defer(job_id, now + timedelta(seconds=delay_s), message), now)

    def request_cancel(self, job_id: str, message: str = "Cancel requested") -> Row | None:
        return self._one(steps.request_cancel(job_id, message))

    def stop(self, job_id: str, canceled: str, requested: str = "Cancel requested") -> Row | None:
        """Not started: canceled. Running: asked to stop at its next progress point (a user's cancel)."""
        return self._one(steps.stop(job_id, canceled, requested))

    def recover(
        self, job_id: str, worker: str, pid: int | None, reason: str, revoked: bool = False
    ) -> Row | None:
        job = self._one(steps.recover(job_id, worker, pid, reason, revoked))
        if job is not None:
            log.warning("recovered job from a lost worker", extra={"job_id": job_id, "status": job.status})
        return job

    def revoke(self, job_id: str, process_ended: bool, how: str = "revoke") -> Row | None:
        return self._one(steps.revoke(job_id, process_ended, how))

    def retry_dead(self, job_id: str, budget: int) -> Row | None:
        return self._one(steps.retry_dead(job_id, budget))

    def discard_dead(self, job_id: str) -> Row | None:
        return self._one(steps.discard_dead(job_id))

    # ----- sweeps: many jobs, one commit each (a racing sweeper moves each job once) --------------

    def _ids(self, stmt: Any) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(stmt).scalars())

    def release_due(self, now: datetime | None = None, batch: int = defaults.RELEASE_BATCH) -> int:
        """scheduled/retrying jobs whose time has come -> queued, and sent. Returns how many."""
        now = now or utcnow()
        due_from = [Status.SCHEDULED.value, Status.RETRYING.value]
        ids = self._ids(
            select(JOBS.c.id)
            .where(JOBS.c.status.in_(due_from), JOBS.c.scheduled_at <= now)
            .order_by(JOBS.c.scheduled_at)
            .limit(batch)
        )
        return sum(self._one(steps.release_due(job_id), now) is not None for job_id in ids)

    def wake(self, key: str) -> int:
        """Move blocked jobs of ``key`` (oldest first) to queued while the key has room for them."""
        woken = 0
        while self._one(steps.wake(key)) is not None:
            woken += 1
        return woken

    def wake_all(self) -> int:
        """The sweep behind ``wake``: every key that has blocked jobs (covers a lost wake-up)."""
        keys = self._ids(
            select(JOBS.c.concurrency_key).where(JOBS.c.status == Status.BLOCKED.value).distinct()
        )
        return sum(self.wake(key) for key in keys if key is not None)

    def reap_stale(self, now: datetime, running_timeout_s: float, retention_days: int) -> dict[str, int]:
        """Fail running jobs without an update for ``running_timeout_s`` (``StaleJob``); cancel jobs that
        waited to start longer than the retention period."""
        silent_since = now - timedelta(seconds=running_timeout_s)
        message = f"No progress for {running_timeout_s / 3600:g} h: the job is presumed stuck"
        stale = self._ids(
            select(JOBS.c.id).where(JOBS.c.status == Status.RUNNING.value, JOBS.c.updated_at < silent_since)
        )
        failed = sum(self._one(steps.reap_stale(i, silent_since, message), now) is not None for i in stale)
        cutoff = now - timedelta(days=retention_days)
        never_started = self._ids(
            select(JOBS.c.id).where(
                or_(
                    JOBS.c.status.in_([Status.QUEUED.value, Status.BLOCKED.value])
                    & (JOBS.c.updated_at < cutoff),
                    JOBS.c.status.in_([Status.SCHEDULED.value, Status.RETRYING.value])
                    & (JOBS.c.scheduled_at < cutoff),
                )
            )
        )
        expired = f"Canceled: did not start within {retention_days} days"
        canceled = sum(self._one(steps.cancel_waiting(i, expired), now) is not None for i in never_started)
        return {"failed": failed, "canceled": canceled}

    def cancel_children(self, parent_id: str, message: str) -> int:
        """A fan-out's parent ended: its children not started are canceled, running ones asked to stop
        (in one commit). Returns how many moved."""
        children = self._ids(
            select(JOBS.c.id).where(
                JOBS.c.parent_id == parent_id,
                JOBS.c.status.in_([s.value for s in steps.STOPPABLE]),
            )
        )
        todo = [steps.stop(i, message) for i in children]
        return sum(row is not None for row in self.commit(*todo)) if todo else 0

    # ----- history: deleted in batches, one commit each ------------------------------------------

    def purge_events(self, before: datetime) -> int:
        """Delete job events older than ``before``; how many."""
        return self._delete_in_batches(st.EVENTS, st.EVENTS.c.created_at < before)

    def delete_finished(self, before: datetime) -> int:
        """Delete jobs that finished before ``before`` (their events and attempts go with them)."""
        finished = [s.value for s in FINISHED]
        return self._delete_in_batches(JOBS, JOBS.c.status.in_(finished), JOBS.c.finished_at < before)

    def _delete_in_batches(self, table: Any, *conditions: Any) -> int:
        total = 0
        while ids := self._ids(select(table.c.id).where(*conditions).limit(defaults.CLEANUP_BATCH_ROWS)):
            with write_gate(self.url), self.engine.begin() as conn:
                conn.execute(delete(table).where(table.c.id.in_(ids), *conditions))
            total += len(ids)
        return total

    def should_stop(self, job_id: str) -> bool:
        """Whether a running job's body should stop: a cancel was asked, or it is not running any more.

        A read (no write lock, no commit): what a report held between writes costs."""
        with self.engine.connect() as conn:
            row = conn.execute(st.SHOULD_STOP, {"b_id": job_id}).first()
        return row is None or bool(row.cancel_requested) or row.status != Status.RUNNING.value

    def status_of(self, job_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(JOBS.c.status).where(JOBS.c.id == job_id)).scalar()


def _message_fields(job: Row | dict[str, Any]) -> tuple[str, str, str]:
    """A job's id, type and queue (what its message carries), from a row or a job dict."""
    if isinstance(job, dict):
        return job["id"], job["type"], job["queue"]
    return job.id, job.type, job.queue
