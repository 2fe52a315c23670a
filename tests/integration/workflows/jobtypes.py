"""A job type for the workflow tests (loaded through QUESTBOARD_JOB_MODULES): a step that grows its
workflow with ``ctx.add_steps``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from shared.jobtypes import JobContext, JobType


class GrowParams(BaseModel):
    children: int = Field(2, ge=1, le=10)
    child_ms: int = Field(300, ge=0, le=5000)


def grow(ctx: JobContext, params: GrowParams) -> dict[str, Any]:
    keys = [f"child-{i}" for i in range(params.children)]
    slow = {"steps": 2, "step_ms": params.child_ms}
    added = ctx.add_steps(
        [{"key": k, "type": "diagnostics.probe", "params": slow} for k in keys]
        + [{"key": "summary", "type": "diagnostics.probe", "after": keys}]
    )
    return {"added": [s["key"] for s in added]}


JOB = JobType(
    name="test.grow", description="Adds steps to its own workflow.", params=GrowParams, perform=grow
)
