"""The task beat sends for every recurring entry: ``questboard.recurring(<job type>)``.

Beat (one per installation: RedBeat holds a lock in Redis, so a second beat waits as a standby) only says
"time for X". This task turns that into a job owned by the system user, so every run is a job row with
its progress, result and errors, listed like any other job. Cleanup types are unique while active: a
run that finds the previous one still going returns it instead of starting a second.
"""

from __future__ import annotations

import logging
from typing import Any

from workers.celery_app import celery_app
from workers.followups import system_jobs

TASK_NAME = "questboard.recurring"
log = logging.getLogger("questboard.recurring")


@celery_app.task(name=TASK_NAME, ignore_result=True)
def run_recurring(job_type: str, params: dict[str, Any] | None = None) -> str:
    """Submit one run of ``job_type`` as the system user; returns the job id."""
    job, created = system_jobs().submit(job_type, params or {})
    log.info(
        "recurring job %s %s",
        job_type,
        "submitted" if created else "still active",
        # not "created": a LogRecord attribute (its time); overwriting it raises KeyError
        extra={"job_id": job["id"], "job_type": job_type, "submitted": created},
    )
    return str(job["id"])
