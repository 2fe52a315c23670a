"""Job types that exist only for the reliability tests (loaded through QUESTBOARD_JOB_MODULES).

Every body start is recorded in a Redis list ``qb:test:starts`` so tests can count real runs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

import redis
from pydantic import BaseModel, Field

from shared.jobtypes import ConcurrencyLimit, JobContext, JobType, RetryPolicy
from shared.settings import get_settings

STARTS_KEY = "qb:test:starts"


def record_start(ctx: JobContext) -> None:
    client = redis.Redis.from_url(get_settings().redis_url)
    client.rpush(STARTS_KEY, f"{ctx.job_id}:{ctx.attempt}:{os.getpid()}:{time.time()}")
    client.close()


class SleepParams(BaseModel):
    seconds: float = Field(0.0, ge=0, le=120)
    key: str = "k"
    record: str = ""


def sleep_without_progress(ctx: JobContext, params: SleepParams) -> dict[str, float]:
    """Works for ``seconds`` without ever reaching a progress point (ignores cooperative cancel)."""
    record_start(ctx)
    time.sleep(params.seconds)
    return {"slept": params.seconds}


def crash(ctx: JobContext, params: SleepParams) -> None:
    """Kills its own process every time, as a segfaulting extension would."""
    record_start(ctx)
    os.kill(os.getpid(), signal.SIGKILL)


def report_then_sleep(ctx: JobContext, params: SleepParams) -> None:
    """Reports 10, 20, 30 % at once, then works ``seconds`` without reporting (or until canceled)."""
    record_start(ctx)
    for percent in (10, 20, 30):
        ctx.progress(percent, f"at {percent}")
    deadline = time.monotonic() + params.seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


def sleep_in_c(ctx: JobContext, params: SleepParams) -> dict[str, float]:
    """Sleeps ``seconds`` inside one C call that no Python signal handler can interrupt (the signals
    Celery's soft limit and the pool's TERM use are blocked), as a stuck C extension would."""
    record_start(ctx)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGALRM})
    ctypes.CDLL(None).sleep(int(params.seconds))
    return {"slept": params.seconds}


RELEASE_KEY = "qb:test:release"


def sleep_until_released(ctx: JobContext, params: SleepParams) -> dict[str, float]:
    """Sleeps ``seconds`` without progress, or less once the test sets ``RELEASE_KEY`` in Redis."""
    record_start(ctx)
    client = redis.Redis.from_url(get_settings().redis_url)
    deadline = time.monotonic() + params.seconds
    while time.monotonic() < deadline and not client.exists(RELEASE_KEY):
        time.sleep(0.05)
    client.close()
    return {"slept": params.seconds}


class AttemptParams(BaseModel):
    seconds: float = Field(60.0, ge=0, le=120)
    report: bool = False


def until_attempt_released(ctx: JobContext, params: AttemptParams) -> dict[str, int]:
    """Waits (without progress) until the test releases this attempt (``RELEASE_KEY:<attempt>``); with
    ``report``, reports 10 % before and 90 % after the wait."""
    record_start(ctx)
    if params.report:
        ctx.progress(10, f"attempt {ctx.attempt} started")
    client = redis.Redis.from_url(get_settings().redis_url)
    deadline = time.monotonic() + params.seconds
    while time.monotonic() < deadline and not client.exists(f"{RELEASE_KEY}:{ctx.attempt}"):
        time.sleep(0.05)
    client.close()
    if params.report:
        ctx.progress(90, f"attempt {ctx.attempt} almost done")
    return {"attempt": ctx.attempt}


FAST_RETRY = RetryPolicy(max_attempts=3, backoff_base_s=0.2, backoff_max_s=1.0)

JOBS = [
    JobType(
        "test.until_attempt_released",
        "Waits until its attempt is released.",
        AttemptParams,
        until_attempt_released,
        retry=FAST_RETRY,
    ),
    JobType(
        "test.until_released",
        "Sleeps without progress until released.",
        SleepParams,
        sleep_until_released,
        retry=FAST_RETRY,
    ),
    JobType("test.sleep", "Sleeps without progress.", SleepParams, sleep_without_progress, retry=FAST_RETRY),
    # Kills its process, as a crashing extension would: a type like that runs on a prefork pool.
    JobType("test.crash", "Kills its worker process.", SleepParams, crash, retry=FAST_RETRY, pool="process"),
    JobType(
        "test.c_sleep",
        "Sleeps in a C call that ignores signals.",
        SleepParams,
        sleep_in_c,
        retry=RetryPolicy(max_attempts=2, backoff_base_s=0.2, backoff_max_s=0.5),
        time_limit_seconds=60,
        pool="process",  # a stuck C call needs a hard kill: the pool process is ended
    ),
    JobType(  # the same body on a thread pool: only recycling its worker ends it (workers.threadpool)
        "test.c_sleep_threads",
        "Sleeps in a C call that ignores signals, on a thread pool.",
        SleepParams,
        sleep_in_c,
        retry=RetryPolicy(max_attempts=2, backoff_base_s=0.2, backoff_max_s=0.5),
        time_limit_seconds=60,
    ),
    JobType(
        "test.report_then_sleep", "Reports three steps, then works quietly.", SleepParams, report_then_sleep
    ),
    JobType(
        "test.exclusive",
        "Sleeps; at most one per key runs at once.",
        SleepParams,
        sleep_without_progress,
        retry=FAST_RETRY,
        concurrency=ConcurrencyLimit(key=lambda p, _uid: f"exclusive:{p.key}", limit=1),
    ),
    JobType(
        "test.unique",
        "Sleeps; one active job per key.",
        SleepParams,
        sleep_without_progress,
        retry=FAST_RETRY,
        unique_by=lambda p: p.key,
    ),
]


def where(ctx: JobContext, params: SleepParams) -> dict[str, int]:
    """Records its start and says which process ran it."""
    record_start(ctx)
    return {"pid": os.getpid(), "parent": os.getppid()}


JOBS.append(JobType("test.where", "Says which process ran it.", SleepParams, where, pool="process"))

JOBS.append(
    JobType(
        "test.limited",
        "Sleeps; at most 10 starts per 5 seconds across all workers.",
        SleepParams,
        sleep_without_progress,
        retry=FAST_RETRY,
        rate_limit="10 per 5 seconds",
    )
)
