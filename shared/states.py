"""Job statuses and the transitions allowed between them.

A transition is applied as one conditional UPDATE (``WHERE status IN (...)``), so two processes racing on
the same job cannot both win: see ``shared.jobs``.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    BLOCKED = "blocked"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


ACTIVE: frozenset[Status] = frozenset(
    {Status.SCHEDULED, Status.QUEUED, Status.BLOCKED, Status.RUNNING, Status.RETRYING}
)
FINISHED: frozenset[Status] = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED})
# Cancelling these needs no worker: the job has not started.
NOT_STARTED: frozenset[Status] = frozenset({Status.SCHEDULED, Status.QUEUED, Status.BLOCKED, Status.RETRYING})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.SCHEDULED: frozenset({Status.QUEUED, Status.CANCELED}),
    Status.QUEUED: frozenset({Status.RUNNING, Status.BLOCKED, Status.CANCELED}),
    Status.BLOCKED: frozenset({Status.QUEUED, Status.CANCELED}),
    # running -> queued: the worker was stopped or lost and the job goes back to the queue.
    Status.RUNNING: frozenset(
        {Status.SUCCEEDED, Status.FAILED, Status.RETRYING, Status.CANCELED, Status.QUEUED}
    ),
    Status.RETRYING: frozenset({Status.QUEUED, Status.CANCELED}),
    # failed -> queued: an operator retries a dead-letter job.
    Status.FAILED: frozenset({Status.QUEUED}),
    Status.SUCCEEDED: frozenset(),
    Status.CANCELED: frozenset(),
}


def can_transition(current: Status | str, target: Status | str) -> bool:
    """Whether a job in ``current`` may move to ``target``."""
    return Status(target) in TRANSITIONS[Status(current)]


def sources_of(target: Status | str) -> frozenset[Status]:
    """Every status from which ``target`` can be reached."""
    return frozenset(s for s, targets in TRANSITIONS.items() if Status(target) in targets)
