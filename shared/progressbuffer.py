"""A running job's progress reports (and its ``running`` update) between database writes.

A running job's row and events are written, and its live updates published, at most once per
``PROGRESS_WRITE_EVERY_S`` (``shared.defaults``): by the first report after that, by the job's next
state change (in the same transaction and the same publish round trip: a quick job costs two
transactions and one round trip instead of two plus one per report, and three round trips), or by a
flusher thread once the interval has passed. So the live view and a refresh both follow a job within
that interval, and nothing is lost: every held report becomes its own event (with its own timestamp, in
order, before the event that follows it) and its own ``job:update`` message. A held report still reads
whether a cancel was asked (a SELECT: no write lock, no commit) once ``CANCEL_CHECK_EVERY_S`` has passed
since the job's claim, write or last such read told it, so a body stops at its first report that long
after the request (a quick job's only report, moments after its claim, costs no read).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import defaults
from shared.jobstate.tx import event_row
from shared.models import Job
from shared.serialize import job_to_dict

log = logging.getLogger("questboard.lifecycle")

# (job_id, percent, message, now, held events) -> the updated row, or None when the job is not running
WriteProgress = Callable[[str, int, str, datetime, list[dict[str, Any]]], "Job | None"]


# (updates in order, their owner's id): publishes the job:update messages of one write in one round trip
Publish = Callable[[list[dict[str, Any]], int], None]


@dataclass
class _Held:
    row: Any  # the last row written, with the held reports applied
    written_at: float
    checked_at: float  # when the database last told whether a cancel was asked (claim, write, read)
    failing_since: float | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # rows for job_events
    updates: list[dict[str, Any]] = field(default_factory=list)  # job:update messages


class ProgressBuffer:
    """The running jobs of one process and their reports not yet written."""

    def __init__(self, write: WriteProgress, publish: Publish, should_stop: Callable[[str], bool]) -> None:
        self._write = write
        self._publish = publish
        self._should_stop = should_stop
        self._held: dict[str, _Held] = {}
        self.lock = threading.RLock()  # held by a job's state changes and by the flusher's writes
        self._wakeup = threading.Condition(self.lock)
        self._flusher_pid = -1

    def started(self, job: Job, published: bool = False) -> None:
        """The job was claimed (and written): its ``running`` update waits for the job's next write, or for
        the flusher once the write interval has passed, so a quick job's updates share one round trip."""
        with self.lock:
            now = time.monotonic()
            self._held[job.id] = _Held(
                row=job, written_at=now, checked_at=now, updates=[] if published else [job_to_dict(job)]
            )
            self._ensure_flusher()

    def report(self, job_id: str, percent: int, message: str, now: datetime) -> bool:
        """Apply a report; whether the body should stop (a cancel was asked, or the job is not running)."""
        with self.lock:
            held = self._held.get(job_id)
            checked = time.monotonic()
            if held is None or checked - held.written_at >= defaults.PROGRESS_WRITE_EVERY_S:
                return self._write_now(job_id, percent, message, now, held)
            held.events.append(event_row(job_id, held.row.status, percent, message, now))
            held.row.progress, held.row.message, held.row.updated_at = percent, message, now
            held.updates.append(job_to_dict(held.row))
            self._ensure_flusher()
            if checked - held.checked_at < defaults.CANCEL_CHECK_EVERY_S:
                return False  # moments ago the database said no cancel was asked (else it stopped then)
            held.checked_at = checked
        # A cancel asked since the last check reaches the body at this report, as it would with a write.
        return self._should_stop(job_id)

    def _write_now(self, job_id: str, percent: int, message: str, now: datetime, held: _Held | None) -> bool:
        """Write (and publish) the held reports and this one; whether the body should stop."""
        row = self._write(job_id, percent, message, now, held.events if held is not None else [])
        if row is None:
            self._held.pop(job_id, None)
            return True
        written = time.monotonic()
        self._held[job_id] = _Held(row=row, written_at=written, checked_at=written)
        self._publish([*(held.updates if held is not None else []), job_to_dict(row)], row.user_id)
        return bool(row.cancel_requested)

    def take(self, job_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        """The job is leaving ``running``: its held events and updates (and its owner's id), for the caller
        to write and publish before its own (call with ``lock`` held)."""
        held = self._held.pop(job_id, None)
        return (held.events, held.updates, held.row.user_id) if held is not None else ([], [], 0)

    def flush(self, job_id: str) -> None:
        """Write the job's held reports now (before a state change that does not take them)."""
        with self.lock:
            held = self._held.get(job_id)
            if held is not None and held.events:
                self._write_held(job_id, held)
            self._held.pop(job_id, None)

    def _write_held(self, job_id: str, held: _Held) -> None:
        last = held.events[-1]
        before = _Held(
            held.row, held.written_at, held.checked_at, events=held.events[:-1], updates=held.updates[:-1]
        )
        self._write_now(job_id, last["progress"], last["message"], last["created_at"], before)

    # ----- the flusher ---------------------------------------------------------------------------

    def _ensure_flusher(self) -> None:
        if self._flusher_pid != os.getpid():  # first hold in this process (a forked one starts its own)
            self._flusher_pid = os.getpid()
            threading.Thread(target=self._flush_forever, name="questboard-progress", daemon=True).start()

    def _flush_forever(self) -> None:
        with self.lock:
            while True:
                # No notify per report (a thread switch per job costs more than the write it saves): the
                # flusher looks again when the next held report is due, and every half interval anyway.
                due_in = self._flush_due()
                self._wakeup.wait(defaults.PROGRESS_WRITE_EVERY_S / 2 if due_in is None else due_in)

    def _flush_due(self) -> float | None:
        """Write reports held longer than the interval; seconds until the next is due (None: none held)."""
        now = time.monotonic()
        next_due: float | None = None
        for job_id, held in list(self._held.items()):
            if not held.events and not held.updates:
                continue
            left = held.written_at + defaults.PROGRESS_WRITE_EVERY_S - now
            if left > 0:
                next_due = left if next_due is None else min(next_due, left)
                continue
            if not held.events:  # only the running update waits: publish it
                updates, held.updates = held.updates, []
                self._publish(updates, held.row.user_id)
                continue
            try:
                self._write_held(job_id, held)
            except Exception as exc:  # the database is away: keep the reports, try again next interval
                if held.failing_since is None:
                    held.failing_since = now
                    log.warning("could not write held progress", extra={"job_id": job_id, "error": repr(exc)})
                elif now - held.failing_since > defaults.PROGRESS_GIVE_UP_AFTER_S:
                    del self._held[job_id]
                    continue
                held.written_at = now
                next_due = (
                    defaults.PROGRESS_WRITE_EVERY_S
                    if next_due is None
                    else min(next_due, defaults.PROGRESS_WRITE_EVERY_S)
                )
        return next_due
