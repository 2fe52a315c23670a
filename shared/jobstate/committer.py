"""Group commit: a worker process's job threads share one transaction per flush.

Each job thread hands its move (a ``Step``) to the process's committer and waits. A background thread
takes whatever moves are waiting — after at most ``GROUP_COMMIT_INTERVAL_S`` for more to arrive while
several job threads are busy, or at once when ``GROUP_COMMIT_MAX_STEPS`` wait — runs them in ONE
transaction (their event rows in one multi-row insert), commits, sends the messages and runs the
hooks that follow, and only then wakes each waiter with its own row; it publishes the batch's live
updates after that, while the job threads already go on (a publish is a notification, and the next
batch's come after it: one thread publishes them all, in order). So a job thread returns (and its
Celery message is acknowledged) only after its move is durable, exactly as with a direct commit: a
worker killed before the flush leaves every waiting move uncommitted and its message unacknowledged.

A batch that raises an error of one of its moves (a lost race for a key's slot, a constraint, a bug in
a step) is run again one step per transaction (each with ``Machine.write``'s slot-race retries; a batch
of one too), so that error reaches that job's waiter only. An error of the database itself (it does not
answer, is locked past the busy timeout, dropped the connection; ``_SYSTEMIC``) reaches every waiter of
the batch at once: running the moves one by one would only meet it again, once per move, while every job
thread of the process waits. So does an error raised by the COMMIT: the batch may have been stored, and
running its moves again could apply some twice. A batch PostgreSQL rolled back as a deadlock's victim
(``shared.db.rolled_back``) stored nothing: it runs again, whole. A job's own moves keep their order:
its thread waits for each before making the next.

The wait for more moves ends early once every job thread that runs an attempt (between a won claim and
its final move) has a move waiting: none can add another before this flush, so waiting longer would only
delay them all (with 2 job threads both waiting it flushed 2 ms late, three times a job).

One committer per process; its thread starts on first use in each process (a forked child starts its
own, and never inherits a parent's waiting moves).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from shared import defaults
from shared.db import rerun_if_rolled_back, write_gate
from shared.errors import WorkerRecycling
from shared.jobstate.machine import Machine
from shared.jobstate.steps import Step
from shared.jobstate.tx import Effects, Row, Tx
from shared.models import utcnow

log = logging.getLogger("questboard.lifecycle")

# Overrides of defaults.GROUP_COMMIT_INTERVAL_S and GROUP_COMMIT_MAX_STEPS.
INTERVAL_ENV = "QUESTBOARD_GROUP_COMMIT_INTERVAL_S"
MAX_STEPS_ENV = "QUESTBOARD_GROUP_COMMIT_MAX_STEPS"
# Test only: "<claims>:<path>" makes the committer, inside the open transaction of the first batch with
# at least <claims> claims, write <path> (the batch's moves, as JSON) and wait there until the process
# is killed (tests/reliability/test_group_commit_crash.py). With it, every flush waits the whole interval
# (or for the maximum number of moves) before it runs.
TEST_HOLD_ENV = "QUESTBOARD_GROUP_COMMIT_TEST_HOLD"
_STARTING = threading.Lock()
# Errors of the database, not of one move: every waiter of the batch gets them at once.
_SYSTEMIC = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)


def _renew_starting_lock() -> None:  # a child forked while another thread held it would wait forever
    global _STARTING
    _STARTING = threading.Lock()


os.register_at_fork(after_in_child=_renew_starting_lock)


def refuse(what: str) -> None:
    """The answer to a move of another thread once the process is sealed (``Committer.seal``,
    ``Lifecycle.seal``): a claim raises ``WorkerRecycling`` (its message goes back to the broker); any other
    move writes nothing and gets None, as for a job that is not its own (it is being given back)."""
    if what == "claim":
        raise WorkerRecycling("this worker is recycling: it claims nothing more")
    return None


class CommitFailed(Exception):
    """The COMMIT of a group commit raised: the batch may or may not be stored (``__cause__`` says why)."""


def enabled() -> bool:
    """Group commit is on unless ``QUESTBOARD_GROUP_COMMIT`` is 0 / false / off / no."""
    return os.environ.get("QUESTBOARD_GROUP_COMMIT", "1").strip().lower() not in {"0", "false", "off", "no"}


@dataclass
class _Waiting:
    step: Step
    now: datetime | None
    what: str  # the move's name (logs, the test hook)
    job_id: str
    thread: int = field(default_factory=threading.get_ident)
    done: threading.Event = field(default_factory=threading.Event)
    row: Row | None = None
    error: BaseException | None = None


class Committer:
    """Runs the moves of one process's job threads in shared transactions (see the module doc)."""

    def __init__(
        self,
        machine: Machine,
        interval_s: float | None = None,
        max_steps: int | None = None,
    ) -> None:
        self.machine = machine
        env = os.environ.get
        self.interval_s = (
            float(env(INTERVAL_ENV, defaults.GROUP_COMMIT_INTERVAL_S)) if interval_s is None else interval_s
        )
        self.max_steps = max(
            1, int(env(MAX_STEPS_ENV, defaults.GROUP_COMMIT_MAX_STEPS)) if max_steps is None else max_steps
        )
        self.batches = 0  # flushes so far in this process (tests, logs)
        self.largest = 0  # the most moves one flush carried
        self._pid = -1
        self._hold = _parse_hold(os.environ.get(TEST_HOLD_ENV, ""))
        self._always_linger = self._hold is not None  # the test hook wants its batch whole

    # ----- the job threads' side -----------------------------------------------------------------

    def run(self, step: Step, now: datetime | None = None, what: str = "", job_id: str = "") -> Row | None:
        """Run ``step`` in the next flush; its row once committed (or the error it raised)."""
        item = _Waiting(step, now, what, job_id)
        self._ensure_thread()
        with self._cond:
            if self._sealed is not None and item.thread != self._sealed:
                return refuse(what)
            self._queue.append(item)
            if what == "claim":
                self._claimers.add(item.thread)
            if len(self._queue) == 1 or len(self._queue) >= self.max_steps or self._all_waiting():
                self._cond.notify()
        interrupted: BaseException | None = None
        while True:
            try:
                item.done.wait()
                break
            except BaseException as exc:  # e.g. a soft time limit: the move is under way, learn its fate
                interrupted = exc
        with self._cond:  # a claimed job's thread has more moves coming; any other move ends the attempt
            if what == "claim" and item.error is None and getattr(item.row, "status", None) == "running":
                self._running.add(item.thread)  # (a claim that ended blocked has no attempt running)
            elif what != "report":
                self._running.discard(item.thread)
                if self._queue and self._all_waiting():  # a flush lingering for this thread can go
                    self._cond.notify()
        if interrupted is not None:
            raise interrupted
        if item.error is not None:
            raise item.error
        return item.row

    def seal(self) -> None:
        """From now on only the calling thread's moves are taken (``Lifecycle.seal``). Moves already
        waiting are flushed first: they were made while the worker still ran its jobs."""
        self._ensure_thread()
        with self._cond:
            self._sealed = threading.get_ident()

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with _STARTING:
            if self._pid != os.getpid():
                self._start()

    def _start(self) -> None:
        # A forked child: a fresh queue and lock, and its own thread.
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Waiting] = []
        self._claimers: set[int] = set()  # job threads seen claiming: more than one means others may come
        self._running: set[int] = set()  # job threads between a won claim and the attempt's end
        self._sealed: int | None = None  # ``seal``: the one thread whose moves are still taken
        threading.Thread(target=self._loop, name="questboard-group-commit", daemon=True).start()
        self._pid = os.getpid()

    # ----- the committer's thread ----------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                self._flush(batch)
            except BaseException as exc:  # never leave a waiter hanging
                log.exception("group commit failed")
                for item in batch:
                    if not item.done.is_set():
                        item.error = exc
                        item.done.set()

    def _next_batch(self) -> list[_Waiting]:
        with self._cond:
            while not self._queue:
                self._cond.wait()
            if (
                len(self._claimers) > 1 or self._always_linger
            ):  # other job threads are busy: their next moves are close
                deadline = time.monotonic() + self.interval_s
                while (
                    len(self._queue) < self.max_steps
                    and (self._always_linger or not self._all_waiting())
                    and (left := deadline - time.monotonic()) > 0
                ):
                    self._cond.wait(left)
            batch, self._queue[:] = self._queue[: self.max_steps], self._queue[self.max_steps :]
            return batch

    def _all_waiting(self) -> bool:
        """Every job thread that runs an attempt has a move waiting: no more can come before a flush."""
        return self._running <= {item.thread for item in self._queue}

    def _flush(self, batch: list[_Waiting]) -> None:
        try:
            rows, effects = rerun_if_rolled_back(
                lambda: self._write(batch), "a group commit", steps=len(batch)
            )
        except Exception as exc:
            if isinstance(exc, (CommitFailed, *_SYSTEMIC)):
                log.warning(
                    "a group commit failed; its moves fail with it",
                    extra={"steps": len(batch), "error": repr(exc.__cause__ or exc)},
                )
                error = exc.__cause__ if isinstance(exc, CommitFailed) and exc.__cause__ else exc
                for item in batch:
                    item.error = error
                    item.done.set()
                return
            if len(batch) > 1:
                log.info("a group commit failed; its moves run one by one", extra={"steps": len(batch)})
            for item in batch:
                self._one(item)
            return
        self.batches += 1
        self.largest = max(self.largest, len(batch))
        self._follow_up(effects)
        for item, row in zip(batch, rows, strict=True):
            item.row = row
            item.done.set()
        self._publish(effects)

    def _write(self, batch: list[_Waiting]) -> tuple[list[Row | None], Effects]:
        """All the batch's steps in one transaction (each with its own time), events inserted together."""
        machine = self.machine
        committing = False
        try:
            with write_gate(machine.url), machine.engine.begin() as conn:
                tx = Tx(conn, utcnow(), batched=True)
                rows = []
                for item in batch:
                    tx.now = item.now or utcnow()
                    rows.append(item.step(tx))
                tx.finish()
                self._maybe_hold(batch)
                committing = True  # leaving the block commits
        except Exception as exc:
            if committing:
                raise CommitFailed("the COMMIT of a group commit failed") from exc
            raise
        return rows, tx.effects

    def _one(self, item: _Waiting) -> None:
        """One step in its own transaction, with the machine's slot-race retries; its own row or error."""
        try:
            rows, effects = self.machine.write(item.step, now=item.now)
        except Exception as exc:
            item.error = exc
        else:
            self._follow_up(effects)
            self._publish(effects)
            item.row = rows[0]
        item.done.set()

    def _follow_up(self, effects: Effects) -> None:
        try:
            self.machine.follow_up(effects)
        except Exception:  # the moves are committed: their rows stand, a sweep covers what did not follow
            log.exception("carrying out a group commit's effects failed")

    def _publish(self, effects: Effects) -> None:
        try:
            self.machine.publish(effects)
        except Exception:  # a notification; the database has the state and subscribers replay it
            log.exception("publishing a group commit's updates failed")

    def _maybe_hold(self, batch: list[_Waiting]) -> None:
        if self._hold is None:
            return
        claims, marker = self._hold
        if sum(item.what == "claim" for item in batch) < claims or marker.exists():
            return
        moves = [{"what": item.what, "job_id": item.job_id} for item in batch]
        marker.write_text(json.dumps({"pid": os.getpid(), "moves": moves}))
        log.warning("test hook: holding a group commit open", extra={"steps": len(batch)})
        while True:
            time.sleep(1)


def _parse_hold(value: str) -> tuple[int, Path] | None:
    if not value:
        return None
    claims, _, path = value.partition(":")
    return int(claims), Path(path)
