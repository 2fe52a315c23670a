"""Debounce (contract §3): a burst of submits with one ``debounce_key`` becomes one job, run once,
``debounce_seconds`` after the last submit, with the last submit's params.

The first submit creates the job ``scheduled`` at now + ``debounce_seconds``. A repeat from the same owner
for the same type and key, while that job is still ``scheduled``, replaces its params and moves its run time
to now + ``debounce_seconds`` (the state machine's ``debounce`` move: one conditional UPDATE); the caller
answers 200 with that job and nothing new is enqueued. Once the job has been released (queued, running,
finished) or canceled, a repeat starts a new one. Race safety:

- submits of one owner are serialised by the submit guard (``shared.jobs``), and the partial unique index
  ``uq_jobs_debounce_scheduled`` keeps at most one scheduled job per (owner, type, key) whatever happens;
- the release of due jobs (the machine's ``release_due``) only takes a job whose ``scheduled_at`` has
  passed, in the same conditional UPDATE, so a repeat that moved the run time a moment earlier is never
  released early; a repeat that loses to the release finds no scheduled job and creates the next one.

Decisions: ``debounce_seconds`` sets the run time, so ``delay_seconds`` and ``run_at`` are refused with it
(422); a unique-while-active type already collapses repeats and is refused too; an ``idempotency_key`` is
checked first (a retried request gets its job back untouched). A repeat that moves the job is not a new job,
so the per-user limits do not refuse it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from shared import defaults
from shared.errors import InvalidRequest
from shared.jobstate import Machine, Row
from shared.jobtypes import JobType


@dataclass(frozen=True)
class Debounce:
    key: str
    seconds: float

    def due(self, now: datetime) -> datetime:
        """When the job runs if no repeat comes."""
        return now + timedelta(seconds=self.seconds)


def debounce_for(
    spec: JobType,
    key: str | None,
    seconds: float | None,
    delay_seconds: float | None,
    run_at: datetime | None,
) -> Debounce | None:
    """The debounce a submit asks for (None: none); InvalidRequest (422) for a half-given or bad one."""
    if key is None and seconds is None:
        return None
    if key is None:
        raise InvalidRequest("debounce_seconds needs a debounce_key.", {"debounce_key": "required"})
    if seconds is None:
        raise InvalidRequest("debounce_key needs debounce_seconds.", {"debounce_seconds": "required"})
    if not 0 < len(key) <= defaults.DEBOUNCE_KEY_MAX_CHARS:
        raise InvalidRequest(
            "Invalid debounce_key.",
            {"debounce_key": f"1 to {defaults.DEBOUNCE_KEY_MAX_CHARS} characters"},
        )
    if not defaults.DEBOUNCE_MIN_S <= seconds <= defaults.DEBOUNCE_MAX_S:
        raise InvalidRequest(
            "Invalid debounce_seconds.",
            {"debounce_seconds": f"from {defaults.DEBOUNCE_MIN_S} to {defaults.DEBOUNCE_MAX_S} seconds"},
        )
    conflicting = {
        name: "not with debounce_seconds: the debounce sets the run time"
        for name, value in (("delay_seconds", delay_seconds), ("run_at", run_at))
        if value is not None
    }
    if conflicting:
        raise InvalidRequest("A debounced job runs debounce_seconds after the last submit.", conflicting)
    if spec.unique_by is not None:
        raise InvalidRequest(
            f"{spec.name} already runs one job at a time; it cannot be debounced.",
            {"debounce_key": "not for a unique-while-active type"},
        )
    return Debounce(key, seconds)


def push_back(
    machine: Machine,
    conn: Connection,
    user_id: int,
    job_type: str,
    debounce: Debounce,
    params: dict[str, Any],
    concurrency_key: str | None,
    now: datetime,
) -> Row | None:
    """The owner's scheduled job of ``job_type`` with the key, now with ``params`` and run time moved to
    now + ``seconds`` (the machine's ``debounce`` move, in the submit's transaction ``conn``); None when
    there is none (no burst yet, or it was released or canceled). The move is kept in the job's timeline."""
    due = debounce.due(now)
    message = f"Debounced: submitted again, now runs at {due:%H:%M:%S} UTC"
    return machine.debounce(conn, now, user_id, job_type, debounce.key, params, concurrency_key, due, message)
