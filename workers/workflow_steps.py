"""Workflows on the worker side: the after-attempt hook, the maintenance sweep and ``ctx.add_steps``."""

from __future__ import annotations

import logging
from typing import Any

from questboard import app as composition
from shared.workflows.service import Workflows
from shared.workflows.settle import FINAL
from workers.outcomes import Outcome

log = logging.getLogger("questboard.workflows")


def workflows() -> Workflows:
    """This process's workflow service, from the composition root (built on first use, after the fork)."""
    return composition.current().workflows


def settle_after(job_id: str, outcome: Outcome) -> None:
    """After an attempt committed its outcome: settle the job's workflow when the job is final. An error
    here is logged, never raised: the maintenance sweep settles the workflow instead."""
    if outcome.status not in FINAL:
        return
    try:
        workflows().settler.settle([job_id])
    except Exception:  # the job's outcome stands; the sweep (WORKFLOW_SWEEP_INTERVAL_S) catches up
        log.exception("settling a workflow failed; the sweep will", extra={"job_id": job_id})


def sweep() -> int:
    """The maintenance step: settle every running workflow that has something to do."""
    return workflows().settler.sweep()


def add_steps(job_id: str, steps: list[Any]) -> list[dict[str, Any]]:
    """``ctx.add_steps``: steps the running job adds to its own workflow."""
    return workflows().add_steps(job_id, steps)
