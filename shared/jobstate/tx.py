"""One transaction of the machine: its moves, their events, attempts and slots, and what must follow.

A move's event row, its attempt row and its slot are written here and nowhere else, on the
transaction's connection, so they commit (or not) with the move. What must happen once the transaction
has committed is collected in ``Effects`` and carried out by the machine in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from shared import defaults
from shared.jobstate import statements as st
from shared.models import Job

Row = Job  # a plain record with the job's columns as attributes (not bound to any session)
# A job's progress reports not yet written: (job_events rows, job:update messages), in order.
Held = tuple[Sequence[dict[str, Any]], Sequence[dict[str, Any]]]


def event_row(job_id: str, status: str, progress: int, message: str, at: datetime) -> dict[str, Any]:
    """A ``job_events`` row: every status change and every progress report becomes one."""
    return {"job_id": job_id, "status": status, "progress": progress, "message": message, "created_at": at}


def clip(message: str) -> str:
    return message[: defaults.MESSAGE_MAX_CHARS]


@dataclass
class Effects:
    """What follows a commit, in order: publish the updates, send the messages, wake the keys, then tell
    the after-final hooks which jobs ended."""

    # (a moved row, or a held job:update message; its owner's id): rows are turned into their message
    # after the commit (the write lock is not held for it)
    publish: list[tuple[Row | dict[str, Any], int]] = field(default_factory=list)
    send: list[Row] = field(default_factory=list)  # through the outage-safe path
    wake: list[str] = field(default_factory=list)  # concurrency keys a slot of which was freed
    final: list[str] = field(default_factory=list)  # ids of the jobs that became final
    final_steps: list[str] = field(default_factory=list)  # ... of those, the workflows' steps


class Tx:
    """The writes of one commit; ``effects`` is what the machine carries out after it.

    ``batched`` (a group commit: many jobs' steps): event rows, new attempts and the closing of attempts
    are kept and written together by ``finish`` (one statement each), which the caller runs before the
    commit."""

    def __init__(self, conn: Connection, now: datetime, batched: bool = False) -> None:
        self.conn = conn
        self.now = now
        self.effects = Effects()
        self._events: list[dict[str, Any]] | None = [] if batched else None
        self._attempts: list[dict[str, Any]] | None = [] if batched else None
        self._closes: list[dict[str, Any]] | None = [] if batched else None

    def add_events(self, rows: Sequence[dict[str, Any]]) -> None:
        if self._events is not None:
            self._events.extend(rows)
        elif rows:
            self.conn.execute(st.ADD_EVENT, list(rows))

    def finish(self) -> None:
        """Write the kept attempt and event rows (a batched transaction; one statement each): the attempts
        opened first, so that an attempt opened and closed in the same transaction is there to close."""
        if self._attempts:
            self.conn.execute(st.OPEN_ATTEMPT, self._attempts)
            self._attempts = []
        if self._closes:
            self.conn.execute(st.CLOSE_ATTEMPT, self._closes)
            self._closes = []
        if self._events:
            self.conn.execute(st.ADD_EVENT, self._events)
            self._events = []

    def move(
        self,
        statement: str,
        job_id: str,
        *,
        publish: bool = True,
        before: Held = ((), ()),
        **params: Any,
    ) -> Row | None:
        """Run one move's statement (``statements.STATEMENTS``); on a hit, add its event and (unless
        ``publish`` is False: the caller publishes it) its update. ``before``: the job's held progress
        events and updates, written and published just ahead of the move's own (only on a hit: a
        worker fenced out changes nothing). The moved row, or None."""
        values = {f"b_{k}": v for k, v in params.items()}
        if "b_message" in values:
            values["b_message"] = clip(values["b_message"])
        events, updates = before
        if events:  # the move keeps the last held report's percentage (statements.HELD_PROGRESS)
            values["b_held_progress"] = events[-1]["progress"]
        found = self.conn.execute(st.STATEMENTS[statement], {"b_id": job_id, "b_now": self.now, **values})
        mapping = found.mappings().one_or_none()
        if mapping is None:
            return None
        row: Row = SimpleNamespace(**mapping)  # type: ignore[assignment]
        self.effects.publish.extend((update, row.user_id) for update in updates)
        self.add_events([*events, event_row(row.id, row.status, row.progress, row.message, self.now)])
        if statement in st.ENDS_JOB:
            self.effects.final.append(row.id)
            if row.workflow_id is not None:
                self.effects.final_steps.append(row.id)
        if publish:
            self.publish(row)
        return row

    def publish(self, row: Row) -> None:
        self.effects.publish.append((row, row.user_id))

    def insert_jobs(self, rows: Sequence[dict[str, Any]]) -> None:
        """New jobs and their first events (one statement each, however many jobs)."""
        self.conn.execute(st.INSERT_JOB, list(rows))
        self.conn.execute(
            st.ADD_EVENT,
            [event_row(r["id"], r["status"], r.get("progress", 0), r["message"], self.now) for r in rows],
        )

    # ----- attempts and slots --------------------------------------------------------------------

    def open_attempt(self, row: Row) -> None:
        attempt = {"job_id": row.id, "number": row.attempts, "worker": row.worker, "started_at": self.now}
        if self._attempts is not None:
            self._attempts.append(attempt)
        else:
            self.conn.execute(st.OPEN_ATTEMPT, attempt)

    def take_slot(self, row: Row) -> None:
        """The lowest free slot of the row's key (the claim's statement checked one is free). A racing
        taker on PostgreSQL surfaces as an IntegrityError: the machine runs the commit again."""
        held = set(self.conn.execute(st.HELD_SLOTS, {"b_key": row.concurrency_key}).scalars())
        free = next((n for n in range(row.concurrency_limit or 1) if n not in held), None)
        if free is None:  # another process took the last slot after the claim's check (READ COMMITTED)
            raise IntegrityError("take_slot", None, Exception("no free slot left for the key"))
        self.conn.execute(
            st.TAKE_SLOT,
            {"key": row.concurrency_key, "slot": free, "job_id": row.id, "acquired_at": self.now},
        )

    def leave_running(
        self,
        row: Row | None,
        attempt: int,
        outcome: str,
        error: dict[str, str] | None = None,
        trace: str | None = None,
    ) -> None:
        """The job left ``running``: close its attempt, free its slot (and wake its key after commit)."""
        if row is None:
            return
        close = {
            "b_job": row.id,
            "b_number": attempt,
            "b_now": self.now,
            "b_outcome": outcome,
            "b_error_type": error["type"] if error else None,
            "b_error_message": error["message"] if error else None,
            "b_traceback": trace,
        }
        if self._closes is not None:  # batched: with the other closes, after the attempts opened
            self._closes.append(close)
        else:
            self.conn.execute(st.CLOSE_ATTEMPT, close)
        if row.concurrency_key is not None:
            self.conn.execute(st.FREE_SLOT, {"b_job": row.id})
            self.effects.wake.append(row.concurrency_key)
