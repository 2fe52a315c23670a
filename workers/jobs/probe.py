"""``diagnostics.probe``: a job for operators and canary checks that reports after every step."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import TransientError
from shared.jobtypes import JobContext, JobType, RetryPolicy


class ProbeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int = Field(1, ge=1, le=1000, description="How many steps to report.")
    step_ms: int = Field(0, ge=0, le=60_000, description="Milliseconds each step takes.")
    fail_first_attempts: int = Field(0, ge=0, le=5, description="Raise a retryable error on these attempts.")
    fail_always: bool = Field(False, description="Raise a retryable error on every attempt.")


def perform(ctx: JobContext, params: ProbeParams) -> dict[str, int]:
    if params.fail_always or ctx.attempt <= params.fail_first_attempts:
        raise TransientError(f"probe failure on attempt {ctx.attempt} (as asked)")
    for step in range(1, params.steps + 1):
        if params.step_ms:
            time.sleep(params.step_ms / 1000)
        ctx.progress(step * 100 // params.steps, f"Step {step} of {params.steps}")
    return {"steps": params.steps, "attempt": ctx.attempt}


JOB = JobType(
    name="diagnostics.probe",
    description="Reports progress after every step; can fail on purpose. For operators and canaries.",
    params=ProbeParams,
    perform=perform,
    queue="default",
    retry=RetryPolicy(max_attempts=3, backoff_base_s=0.5, backoff_max_s=5.0),
    time_limit_seconds=600,
)
