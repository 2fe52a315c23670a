"""Job statuses. The moves between them, and the one table that allows them: ``shared.jobstate``."""

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
