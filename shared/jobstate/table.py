"""The one transition table: every named move of a job, the statuses it may start from, where it ends.

Every write of a job's status goes through one of these moves (``shared.jobstate.machine``); each move's
statement (``shared.jobstate.statements``) reads its ``WHERE status IN (...)`` from here, so a move the
table does not allow cannot happen, and two processes racing on the same job cannot both win. A move
whose ``target`` is None keeps the status (a progress report, a cancel request, a deferral).

Fair share's ``held`` flag (a queued job kept in the database for its owner's turn) means something only
while the job is ``queued``: every move out of ``queued`` clears it (``statements``).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.states import NOT_STARTED, Status

S = Status


@dataclass(frozen=True)
class Move:
    name: str
    sources: frozenset[Status]  # empty: the move creates the job
    target: Status | None  # None: the status stays what it was

    def ends_in(self, source: Status) -> Status:
        return self.target if self.target is not None else source


def _moves(*moves: tuple[str, frozenset[Status] | set[Status], Status | None]) -> dict[str, Move]:
    return {name: Move(name, frozenset(sources), target) for name, sources, target in moves}


WAITING = NOT_STARTED  # scheduled, queued, blocked, retrying: cancelable without a worker

MOVES: dict[str, Move] = _moves(
    # created
    ("submit", set(), S.QUEUED),
    ("schedule", set(), S.SCHEDULED),
    ("submit_waiting", set(), S.BLOCKED),  # a workflow step created waiting for the steps it runs after
    # waiting
    ("debounce", {S.SCHEDULED}, None),  # a repeat submit with its debounce key: new params and run time
    # starting
    ("claim", {S.QUEUED}, S.RUNNING),
    ("block", {S.QUEUED}, S.BLOCKED),  # its concurrency key has no free slot
    ("defer", {S.QUEUED}, None),  # a rate limit said wait: sent again later, no attempt used
    ("wake", {S.BLOCKED}, S.QUEUED),  # a slot of its key freed
    ("release_due", {S.SCHEDULED, S.RETRYING}, S.QUEUED),
    ("release_step", {S.BLOCKED}, S.QUEUED),  # a workflow step whose dependencies are done
    # running (fenced by the attempt number the worker claimed)
    ("report", {S.RUNNING}, None),
    ("request_cancel", {S.RUNNING}, None),
    ("succeed", {S.RUNNING}, S.SUCCEEDED),
    ("retry_later", {S.RUNNING}, S.RETRYING),
    ("fail_attempt", {S.RUNNING}, S.FAILED),
    ("cancel", {S.RUNNING}, S.CANCELED),  # the body stopped at a cancel request (or was stopped)
    ("requeue", {S.RUNNING}, S.QUEUED),  # the worker is stopping: the attempt is given back
    ("postpone", {S.RUNNING}, S.QUEUED),  # the body met a rate limit: given back, sent again later
    # a running job's process died (guarded by its worker and pid, not by the attempt)
    ("recover", {S.RUNNING}, S.QUEUED),
    ("recover_spent", {S.RUNNING}, S.FAILED),  # its attempts are spent
    ("recover_canceled", {S.RUNNING}, S.CANCELED),  # a cancel was asked or its task was revoked
    ("reap_stale", {S.RUNNING}, S.FAILED),  # silent for hours: presumed stuck
    # not started
    # a user's cancel, a parent's cancel, the retention reaper, a workflow step a failed dependency cancels
    ("cancel_waiting", WAITING, S.CANCELED),
    ("revoke", WAITING | {S.RUNNING}, S.CANCELED),  # a Celery revoke that ended the process
    # dead letters
    ("retry_dead", {S.FAILED}, S.QUEUED),
    ("discard_dead", {S.FAILED}, None),
)

TRANSITIONS: dict[Status, frozenset[Status]] = {
    source: frozenset(
        m.target for m in MOVES.values() if source in m.sources and m.target not in (None, source)
    )
    for source in Status
}


def can_transition(current: Status | str, target: Status | str) -> bool:
    """Whether some move takes a job in ``current`` to ``target``."""
    return Status(target) in TRANSITIONS[Status(current)]


def sources_of(target: Status | str) -> frozenset[Status]:
    """Every status from which ``target`` can be reached."""
    return frozenset(s for s, targets in TRANSITIONS.items() if Status(target) in targets)
