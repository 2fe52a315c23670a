"""A worker process's side of the state machine: its claimed attempts and its held progress reports.

Every move is ``shared.jobstate.Machine``'s; this adds what one worker process keeps between them: the
attempt it claimed for each job (its writes are fenced by it) and the progress buffer, whose held
reports are written and published in the same commit as the job's next move.

Group commit (``shared.jobstate.committer``, on unless ``QUESTBOARD_GROUP_COMMIT=0``): the moves of a
running job — claim, progress, success, failure, cancel, requeue, postpone, defer — go through the
process's committer, which runs those of many job threads in one transaction; each call still returns
only once its own move is committed.

``claim`` is atomic: a message delivered twice, or a job canceled while its message waited, runs the body
at most once, because only one UPDATE can move the row from ``queued`` to ``running``.
"""

from __future__ import annotations

import threading
import traceback as tb_module
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from shared import fairshare
from shared.dispatch import Dispatcher
from shared.jobstate import Machine, Row, steps
from shared.jobstate import committer as group
from shared.jobstate.steps import Step
from shared.jobstate.tx import Held, clip
from shared.jobtypes import RetryPolicy
from shared.models import utcnow
from shared.progressbuffer import ProgressBuffer
from shared.publisher import Publisher
from shared.states import Status

__all__ = ["Lifecycle"]


class Lifecycle:
    """The moves a worker (its pool processes and its maintenance loop) makes."""

    def __init__(
        self,
        database_url: str,
        publisher: Publisher,
        dispatcher: Dispatcher,
        group_commit: bool | None = None,
    ) -> None:
        self.machine = Machine(database_url, publisher, dispatcher, gate=fairshare.send)
        on = group.enabled() if group_commit is None else group_commit
        self.committer = group.Committer(self.machine) if on else None
        self.publisher = publisher
        self.dispatcher = dispatcher
        self._attempts: dict[str, int] = {}  # job id -> the attempt this process claimed (fencing)
        self._sealed: int | None = None  # ``seal``
        self._progress = ProgressBuffer(
            self._write_progress,
            lambda jobs, uid: self.publisher.job_updates(jobs, uid),
            self.machine.should_stop,
        )
        # The machine's moves that need nothing of this process.
        self.request_cancel = self.machine.request_cancel
        self.recover = self.machine.recover
        self.revoke = self.machine.revoke
        self.send = self.machine.enqueue  # fair share: the gate (shared.fairshare)
        self.wake = self.machine.wake
        self.wake_all = self.machine.wake_all
        self.release_due = self.machine.release_due

    def seal(self) -> None:
        """The worker is recycling (``workers.threadpool.recycle``): from now on only the calling thread's
        moves are written. Another job thread's claim raises ``WorkerRecycling`` (its message goes back to
        the broker); its other moves write nothing and return None, as for a job that is not its own: the
        caller is about to give those jobs back, and once another worker claims one again (the same
        attempt number) a late move of the old thread would otherwise pass the attempt fence."""
        self._sealed = threading.get_ident()
        if self.committer is not None:
            self.committer.seal()

    def _run(self, step: Step, what: str, job_id: str, now: datetime | None = None) -> Row | None:
        """One move: through the committer (shared with other job threads' moves), or its own commit."""
        if self.committer is not None:
            return self.committer.run(step, now, what, job_id)
        if self._sealed is not None and threading.get_ident() != self._sealed:
            return group.refuse(what)
        return self.machine.commit(step, now=now)[0]

    def _write_progress(
        self, job_id: str, percent: int, message: str, now: datetime, before: list[dict[str, Any]]
    ) -> Row | None:
        attempt = self._attempts.get(job_id)
        if attempt is None:  # not claimed by this process: no attempt of ours to write for
            return None
        return self._run(steps.report(job_id, attempt, percent, message, (before, ())), "report", job_id, now)

    def refill(self, queue: str) -> int:
        """Fair share: send the queue's next held jobs, in turns (after a start; shared.fairshare)."""
        return fairshare.refill(self.machine, queue)

    def is_queued(self, job_id: str) -> bool:
        return self.machine.status_of(job_id) == Status.QUEUED.value

    def claim(
        self, job_id: str, worker: str, pid: int | None = None, started_at: datetime | None = None
    ) -> Row | None:
        """queued -> running, counting the attempt; None when it is not this worker's to run (or it went
        to ``blocked``: its concurrency key has no free slot). Its ``running`` update is published with
        the job's next write (see ProgressBuffer)."""
        try:
            job = self._run(steps.claim(job_id, worker, pid, publish=False), "claim", job_id, started_at)
        except IntegrityError:  # lost the race for the key's slot every time: wait for a free one
            job = self._run(steps.block(job_id), "block", job_id)
        if job is None or job.status != Status.RUNNING.value:
            return None
        self._attempts[job.id] = job.attempts
        self._progress.started(job)
        return job

    def progress(self, job_id: str, percent: int, message: str) -> bool:
        """Record progress of a running job; True when the job should stop (cancel asked, or not running)."""
        percent = max(0, min(100, int(percent)))
        return self._progress.report(job_id, percent, clip(message), utcnow())

    def defer(self, job_id: str, delay_s: float, message: str) -> Row | None:
        """queued -> scheduled for ``delay_s`` (a rate limit before the claim); no attempt used."""
        now = utcnow()
        return self._run(steps.defer(job_id, now + timedelta(seconds=delay_s), message), "defer", job_id, now)

    def _leave(self, job_id: str, what: str, move: Callable[[Held], Step]) -> Row | None:
        """The job leaves ``running``: its held reports go in the same commit, just before the move.

        They are taken under the progress lock (the flusher writes none of them after that) and the move
        waits for its commit outside it, so other job threads' moves can join the same flush."""
        self._attempts.pop(job_id, None)
        with self._progress.lock:
            events, updates, _ = self._progress.take(job_id)
        return self._run(move((events, updates)), what, job_id)

    def succeed(self, job_id: str, attempt: int, result: Any, message: str = "Done") -> Row | None:
        return self._leave(
            job_id, "succeed", lambda held: steps.succeed(job_id, attempt, result, message, held)
        )

    def fail_attempt(self, job_id: str, attempt: int, exc: BaseException, policy: RetryPolicy) -> Row | None:
        """Record the error; ``retrying`` with the next attempt's due time, or ``failed`` (dead letter)."""
        error = {"type": type(exc).__name__, "message": clip(str(exc))}
        trace = "".join(tb_module.format_exception(exc))
        retry_at = None
        if policy.decide(exc, attempt) == "retry":
            retry_at = utcnow() + timedelta(seconds=policy.delay_s(attempt, exc))
        return self._leave(
            job_id,
            "fail_attempt",
            lambda held: steps.fail_attempt(job_id, attempt, error, trace, retry_at, held),
        )

    def mark_canceled(self, job_id: str, attempt: int, message: str = "Canceled") -> Row | None:
        """running -> canceled (the body stopped at a cancel request), its attempt closed, slot freed."""
        return self._leave(job_id, "cancel", lambda held: steps.cancel(job_id, attempt, message, held))

    def requeue(self, job_id: str, attempt: int, reason: str) -> Row | None:
        """running -> queued and sent (the worker is stopping); the attempt does not count."""
        return self._leave(
            job_id, "requeue", lambda held: steps.give_back(job_id, attempt, reason, None, held)
        )

    def postpone(self, job_id: str, attempt: int, delay_s: float, reason: str) -> Row | None:
        """running -> queued, sent again after ``delay_s`` (the body met a rate limit, ``Postponed``); the
        attempt does not count."""
        due = utcnow() + timedelta(seconds=delay_s)
        return self._leave(
            job_id, "postpone", lambda held: steps.give_back(job_id, attempt, reason, due, held)
        )
