"""A workflow's steps as a graph: what a request may declare, checked before anything is written.

Every rule here answers with 422 and ``fields`` naming the step (``steps.<i>.<field>``), so a caller sees
every mistake of a request at once: a duplicate key, a key in ``after`` that names no step, a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared import defaults

KEY_PATTERN = r"^[A-Za-z0-9_.:-]+$"


class OnFailure(StrEnum):
    """What a step's failure (or cancel) does to the steps that run after it."""

    CANCEL_DEPENDENTS = "cancel_dependents"
    CONTINUE = "continue"


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=100, pattern=KEY_PATTERN)
    type: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] | None = None
    after: list[str] = Field(default_factory=list, max_length=defaults.WORKFLOW_MAX_STEPS)
    on_failure: OnFailure = OnFailure.CANCEL_DEPENDENTS
    queue: str | None = Field(None, description="As in POST /api/jobs: the type's own queue or a lower one.")


class WorkflowSpec(BaseModel):
    """The body of ``POST /api/workflows``."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    steps: list[StepSpec] = Field(min_length=1, max_length=defaults.WORKFLOW_MAX_STEPS)


def graph_errors(steps: Sequence[StepSpec], existing: Iterable[str] = ()) -> dict[str, str]:
    """Duplicate keys, unknown keys in ``after`` and cycles, as ``fields``; ``existing``: keys already
    in the workflow (``ctx.add_steps``), which new steps may run after but never reuse."""
    known = set(existing)
    fields: dict[str, str] = {}
    seen: set[str] = set()
    for i, step in enumerate(steps):
        if step.key in seen or step.key in known:
            fields[f"steps.{i}.key"] = f"duplicate key {step.key!r}"
        seen.add(step.key)
    for i, step in enumerate(steps):
        unknown = [k for k in step.after if k not in seen and k not in known]
        if unknown:
            fields[f"steps.{i}.after"] = f"unknown step key(s): {', '.join(unknown)}"
        elif step.key in step.after:
            fields[f"steps.{i}.after"] = "a step cannot run after itself"
    if not fields:
        for i in cycle_members(steps):
            fields[f"steps.{i}.after"] = "the steps' dependencies form a cycle"
    return fields


def cycle_members(steps: Sequence[StepSpec]) -> list[int]:
    """Indexes of the steps that can never start because they wait on each other (Kahn's algorithm)."""
    index = {s.key: i for i, s in enumerate(steps)}
    waiting = {i: {index[k] for k in s.after if k in index} for i, s in enumerate(steps)}
    ready = [i for i, deps in waiting.items() if not deps]
    while ready:
        done = ready.pop()
        for i, deps in waiting.items():
            if done in deps:
                deps.discard(done)
                if not deps:
                    ready.append(i)
        waiting[done] = {-1}  # marks it placed
    return sorted(i for i, deps in waiting.items() if deps and deps != {-1})


def levels(after_of: dict[str, list[str]]) -> dict[str, int]:
    """Each key's depth in the graph (0: runs first); the workflow page lays steps out by it."""
    depth: dict[str, int] = {}

    def level(key: str, trail: frozenset[str]) -> int:
        if key not in depth:
            parents = [p for p in after_of.get(key, []) if p in after_of and p not in trail]
            depth[key] = 1 + max((level(p, trail | {key}) for p in parents), default=-1)
        return depth[key]

    for key in after_of:
        level(key, frozenset())
    return depth
