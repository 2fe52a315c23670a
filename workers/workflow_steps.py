"""Workflows on the worker side: the maintenance sweep and ``ctx.add_steps`` (the after-final hook is the
state machine's, registered by the composition root)."""

from __future__ import annotations

from typing import Any

from questboard import app as composition
from shared.workflows.service import Workflows


def workflows() -> Workflows:
    """This process's workflow service, from the composition root (built on first use, after the fork)."""
    return composition.current().workflows


def sweep() -> int:
    """The maintenance step: settle every running workflow that has something to do."""
    return workflows().settler.sweep()


def add_steps(job_id: str, steps: list[Any]) -> list[dict[str, Any]]:
    """``ctx.add_steps``: steps the running job adds to its own workflow."""
    return workflows().add_steps(job_id, steps)
