"""Job types for the fault tests (loaded through QUESTBOARD_JOB_MODULES).

``fault.ledger`` reports progress every ``step_s`` for ``steps`` steps, then records its completed run in
the ``fault_ledger`` table, whose primary key is the job id: a body that ran to completion twice fails
there, visibly.
"""

from __future__ import annotations

import os
import time

from pydantic import BaseModel, Field
from sqlalchemy import text

from shared.jobtypes import JobContext, JobType, RetryPolicy

LEDGER_DDL = (
    "CREATE TABLE IF NOT EXISTS fault_ledger (job_id VARCHAR(64) PRIMARY KEY, attempt INTEGER, pid INTEGER)"
)


class LedgerParams(BaseModel):
    steps: int = Field(10, ge=1, le=1000)
    step_s: float = Field(0.5, ge=0, le=10)


def ledger(ctx: JobContext, params: LedgerParams) -> dict[str, int]:
    for step in range(params.steps):
        time.sleep(params.step_s)
        ctx.progress(int(100 * (step + 1) / params.steps), f"step {step + 1} of {params.steps}")
    with ctx.session() as session:
        session.execute(
            text("INSERT INTO fault_ledger (job_id, attempt, pid) VALUES (:j, :a, :p)"),
            {"j": ctx.job_id, "a": ctx.attempt, "p": os.getpid()},
        )
    return {"attempt": ctx.attempt}


JOBS = [
    JobType(
        "fault.ledger",
        "Reports progress, then records its completed run once.",
        LedgerParams,
        ledger,
        retry=RetryPolicy(max_attempts=3, backoff_base_s=0.2, backoff_max_s=1.0),
    )
]
