"""The baseline: a plain Celery app with no-op tasks, on the same Redis as Questboard.

Configured from the environment so one module serves every pool setting:
``BENCH_BROKER_URL`` (required), ``BENCH_ACKS_LATE`` (1/0), ``BENCH_PREFETCH`` (int),
``BENCH_EVENTS`` (1/0: task events as Questboard ships them). JSON only, no result backend.
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

app = Celery("bench_plain")
app.conf.update(
    broker_url=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"),
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    result_backend=None,
    task_acks_late=os.environ.get("BENCH_ACKS_LATE", "0") == "1",
    worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH", "4")),
    worker_send_task_events=os.environ.get("BENCH_EVENTS", "0") == "1",
    task_send_sent_event=os.environ.get("BENCH_EVENTS", "0") == "1",
    worker_hijack_root_logger=False,
    task_default_queue="bench",
)

_marks: dict[str, redis.Redis] = {}


def _redis() -> redis.Redis:
    client = _marks.get("c")
    if client is None:
        client = _marks["c"] = redis.Redis.from_url(app.conf.broker_url)
    return client


@app.task(name="bench.noop", ignore_result=True)
def noop(i: int = 0) -> None:
    """Does nothing (the P1/P6 baseline)."""
    return None


@app.task(name="bench.mark", ignore_result=True)
def mark(key: str) -> None:
    """Records when it started (P4/P7 baselines): RPUSH bench:start:<key> <unix time>."""
    _redis().rpush(f"bench:start:{key}", repr(time.time()))


@app.task(name="bench.sleep", ignore_result=True)
def sleep(key: str, seconds: float) -> None:
    """Records each start ("<unix time> <pid>"), then sleeps (P5 baseline: killed mid-run, how long until it
    runs again)."""
    _redis().rpush(f"bench:start:{key}", f"{time.time()!r} {os.getpid()}")
    time.sleep(seconds)
