"""Structured log lines around every job: when it is enqueued, and how long and how much memory it took.

Registered on ``shared.hooks`` when imported (``workers.tasks`` imports it in workers; the web app too).
Memory is the process's peak resident size (``ru_maxrss``, KiB on Linux) after the job, with how much the
job raised it; with ``QUESTBOARD_TRACE_MEMORY=1`` also the peak of Python allocations during the job
(tracemalloc, which slows allocation-heavy jobs).
"""

from __future__ import annotations

import logging
import resource
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared import hooks
from shared.settings import get_settings

log = logging.getLogger("questboard.jobs.metrics")


def peak_rss_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def log_enqueued(job: dict[str, Any]) -> None:
    log.info(
        "job enqueued job_id=%s job_type=%s queue=%s",
        job["id"],
        job["type"],
        job["queue"],
        extra={"job_id": job["id"], "job_type": job["type"], "queue": job["queue"]},
    )


@contextmanager
def measure_job(job_id: str, job_type: str, attempt: int) -> Iterator[None]:
    """Log duration and peak memory of one job attempt, whatever its outcome."""
    tracing = get_settings().trace_memory and not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    rss_before = peak_rss_kb()
    started = time.perf_counter()
    outcome = "returned"
    try:
        yield
    except BaseException as exc:
        outcome = type(exc).__name__
        raise
    finally:
        fields: dict[str, Any] = {
            "job_id": job_id,
            "job_type": job_type,
            "attempt": attempt,
            "outcome": outcome,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "peak_memory_kb": peak_rss_kb(),
            "memory_growth_kb": peak_rss_kb() - rss_before,
        }
        if tracing:
            fields["python_peak_kb"] = tracemalloc.get_traced_memory()[1] // 1024
            tracemalloc.stop()
        log.info(
            "job performed " + " ".join(f"{k}=%s" for k in fields),
            *fields.values(),
            extra=fields,
        )


def register() -> None:
    """Add the hooks once (importing this module calls it)."""
    if log_enqueued not in hooks.before_enqueue:
        hooks.before_enqueue.append(log_enqueued)
    if measure_job not in hooks.around_perform:
        hooks.around_perform.append(measure_job)


register()
