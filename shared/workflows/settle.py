"""Settling a workflow: release the steps whose dependencies are done, cancel the ones a failure cancels,
and close the workflow once no step is left to run.

``Settler.settle(job_ids)`` runs after a step becomes final (the after-commit hooks: see the module doc of
``shared.workflows``); ``Settler.sweep()`` runs in every worker's maintenance loop and settles any running
workflow that has something to do, so a lost hook (a killed process, a cancel from another path) only
delays a workflow by one sweep and never leaves it hanging. Every write is conditional (a step row's
``released_at`` is set once; the workflow closes once), so settlers racing each other change each row once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from shared import defaults, fairshare
from shared.db import get_sessionmaker
from shared.dispatch import Dispatcher
from shared.jobstate import Machine, Row, Tx, steps
from shared.jobstate.steps import Step
from shared.models import Job, Workflow, WorkflowStep
from shared.publisher import Publisher
from shared.states import FINISHED, Status
from shared.workflows.plan import OnFailure

log = logging.getLogger("questboard.workflows")
FINAL = frozenset(s.value for s in FINISHED)
RUNNING = "running"
# Passes of one settle: a later pass sees what a racing settler wrote meanwhile; rules cascade within one.
SETTLE_PASSES = 3
STEPS = WorkflowStep.__table__


@dataclass(frozen=True)
class StepState:
    job_id: str
    key: str
    after: list[str]
    on_failure: str
    status: str
    pending: bool  # blocked on its dependencies (not yet released or canceled by them)


@dataclass
class Decision:
    release: list[str] = field(default_factory=list)
    cancel: list[tuple[str, str]] = field(default_factory=list)  # (job id, message)
    final_status: str | None = None

    def __bool__(self) -> bool:
        return bool(self.release or self.cancel or self.final_status)


def decide(steps: list[StepState]) -> Decision:
    """What the workflow's rules say to do now (pure: the tests and the sweep use it without writing).

    A pending step is canceled as soon as one of its dependencies failed or was canceled with
    ``cancel_dependents``; it is released once every dependency is final (and none cancels it). Cancels
    cascade within one decision. The workflow is final when every step is: ``succeeded`` if all did,
    ``failed`` if any failed, else ``canceled``.
    """
    by_key = {s.key: s for s in steps}
    status = {s.key: s.status for s in steps}
    decision = Decision()
    open_keys = [s.key for s in steps if s.pending]
    changed = True
    while changed:
        changed = False
        for key in list(open_keys):
            step = by_key[key]
            deps = [by_key[k] for k in step.after if k in by_key]
            fatal = [
                d
                for d in deps
                if status[d.key] in (Status.FAILED.value, Status.CANCELED.value)
                and d.on_failure == OnFailure.CANCEL_DEPENDENTS.value
            ]
            if fatal:
                decision.cancel.append((step.job_id, f"Canceled: step {fatal[0].key} {status[fatal[0].key]}"))
                status[key] = Status.CANCELED.value
            elif all(status[d.key] in FINAL for d in deps):
                decision.release.append(step.job_id)
                status[key] = Status.QUEUED.value
            else:
                continue
            open_keys.remove(key)
            changed = True
    if all(s in FINAL for s in status.values()):
        values = set(status.values())
        decision.final_status = (
            Status.SUCCEEDED.value
            if values == {Status.SUCCEEDED.value}
            else Status.FAILED.value
            if Status.FAILED.value in values
            else Status.CANCELED.value
        )
    return decision


STATE_QUERY = (
    select(
        STEPS.c.workflow_id,
        STEPS.c.job_id,
        STEPS.c.key,
        STEPS.c.after,
        STEPS.c.on_failure,
        STEPS.c.released_at,
        STEPS.c.held_concurrency_key,
        Job.status,
    )
    .join(Job, Job.id == STEPS.c.job_id)
    .order_by(STEPS.c.position)
)
RELEASED = "Queued (its dependencies are done)"


def _state(row: Any) -> StepState:
    pending = row.released_at is None and row.status == Status.BLOCKED.value
    return StepState(row.job_id, row.key, list(row.after or []), row.on_failure, row.status, pending)


class Settler:
    """Applies ``decide`` through the state machine (the steps' moves ``release_step`` and
    ``cancel_waiting``, in one commit with the step rows), which publishes and sends what changed."""

    def __init__(self, database_url: str, publisher: Publisher, dispatcher: Dispatcher) -> None:
        self._sessions = get_sessionmaker(database_url)
        # Its own machine, without after-final hooks: a step this cancels is settled by the passes below.
        # Released steps take their fair-share turns like any other job.
        self.machine = Machine(database_url, publisher, dispatcher, gate=fairshare.send)
        self._sweep_after = ""  # where the next sweep goes on from (a workflow id)

    def settle(self, job_ids: Iterable[str]) -> None:
        """The after-final hook: settle the workflows of these jobs (jobs of no workflow cost one read)."""
        ids = list(job_ids)
        with self._sessions() as session:
            workflow_ids = set(
                session.scalars(select(Job.workflow_id).where(Job.id.in_(ids), Job.workflow_id.is_not(None)))
            )
        for workflow_id in workflow_ids:
            self.settle_workflow(workflow_id)

    def settle_workflow(self, workflow_id: str) -> None:
        """Apply the rules until nothing changes (a settler racing this one may have done part of it)."""
        for _ in range(SETTLE_PASSES):
            with self._sessions() as session:
                rows = session.execute(STATE_QUERY.where(STEPS.c.workflow_id == workflow_id)).all()
            decision = decide([_state(r) for r in rows])
            if not decision:
                return
            self.machine.commit(*_moves(workflow_id, decision, {r.job_id: r for r in rows}))
            if decision.final_status:
                return

    def sweep(self, batch: int = defaults.WORKFLOW_SWEEP_BATCH) -> int:
        """Settle the running workflows the rules say have something to do, ``batch`` at a time: one read
        per sweep, writes only where needed. Successive sweeps walk on through every running workflow (by
        id, wrapping around), so none waits behind older ones. Returns how many were settled."""
        running = (
            select(Workflow.id)
            .where(Workflow.status == RUNNING, Workflow.id > self._sweep_after)
            .order_by(Workflow.id)
            .limit(batch)
        )
        with self._sessions() as session:
            ids = list(session.scalars(running))
            rows = session.execute(STATE_QUERY.where(STEPS.c.workflow_id.in_(ids))).all() if ids else []
        self._sweep_after = ids[-1] if len(ids) == batch else ""
        grouped: dict[str, list[StepState]] = defaultdict(list)
        for row in rows:
            grouped[row.workflow_id].append(_state(row))
        due = [wid for wid, steps in grouped.items() if decide(steps)]
        for workflow_id in due:
            self.settle_workflow(workflow_id)
        return len(due)


def _moves(workflow_id: str, decision: Decision, rows: dict[str, Any]) -> list[Step]:
    """The decision as steps of one commit: cancels first, then releases, then the workflow's close."""
    todo = [_once(job_id, steps.cancel_waiting(job_id, message)) for job_id, message in decision.cancel]
    todo += [
        _once(job_id, steps.release_step(job_id, rows[job_id].held_concurrency_key, RELEASED))
        for job_id in decision.release
    ]
    if decision.final_status:
        todo.append(_close(workflow_id, decision.final_status))
    return todo


def _take(conn: Connection, job_id: str, now: datetime) -> bool:
    """Mark the step released, once: False when another settler did (or a user canceled it)."""
    result = conn.execute(
        update(STEPS).where(STEPS.c.job_id == job_id, STEPS.c.released_at.is_(None)).values(released_at=now)
    )
    return bool(result.rowcount)


def _once(job_id: str, move: Step) -> Step:
    """The step's move, in the same commit as its step row's mark, and only by the settler that set it."""
    return lambda tx: move(tx) if _take(tx.conn, job_id, tx.now) else None


def _close(workflow_id: str, status: str) -> Step:
    """The workflow is final (once: a racing settler's close changes nothing). Not a job's move."""

    def step(tx: Tx) -> Row | None:
        tx.conn.execute(
            update(Workflow)
            .where(Workflow.id == workflow_id, Workflow.status == RUNNING)
            .values(status=status, finished_at=tx.now)
        )
        log.info("workflow finished", extra={"workflow_id": workflow_id, "status": status})
        return None

    return step
