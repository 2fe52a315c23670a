# ruff: noqa: E501
"""Prototypes of P1 changes, applied by monkeypatching inside benchmark workers only.

Loaded with ``celery worker --include benchmarks.prototypes``; ``BENCH_PROTO`` names the prototypes to
apply (``+``-separated). No project file is edited: each prototype replaces a function in the worker's
memory at import time (before the pool forks), so the gain measured is that of the patch in ``what``.
"""

from __future__ import annotations

import os
from typing import Any

# The first session's prototypes (core-sql, coalesce-progress, no-task-events, no-reserved-set) were adopted
# in the product (shared/jobstate/, shared/progressbuffer.py, celeryconfig.py, workers/reserved.py); their
# measurements stay in BENCHMARKS.md. What is left here are upper bounds: what removing a piece would gain.
PROTOTYPES: dict[str, dict[str, Any]] = {
    "no-publish": {
        "what": "SocketIOPublisher.job_update/job_updates do nothing (upper bound of 'skip the publish when nobody listens')",
    },
    "no-job-log": {
        "what": "the around_perform hook that logs each job's duration and peak memory (one JSON line, two getrusage) is removed",
    },
    "threads-pool": {
        "what": "celery -P threads (2 threads) instead of prefork -c 2",
        "args": ["--pool", "threads"],
    },
    "no-publish+no-job-log": {
        "what": "both upper bounds together",
    },
    "concurrency-4": {
        "what": "4 pool processes instead of 2 (on 2 cores: more jobs in flight while others wait on the main process, SQLite or Redis)",
        "concurrency": 4,
    },
    "concurrency-4+prefetch-4": {
        "what": "4 pool processes and worker_prefetch_multiplier = 4",
        "concurrency": 4,
    },
    "prefetch-4": {
        "what": "worker_prefetch_multiplier = 4 (Celery's default) instead of 1: each pool process has its next message before it finishes",
    },
}

NAME = os.environ.get("BENCH_PROTO", "")


def _no_publish() -> None:
    from shared import publisher

    publisher.SocketIOPublisher.job_update = lambda self, job, user_id: None  # type: ignore[method-assign]
    publisher.SocketIOPublisher.job_updates = lambda self, jobs, user_id: None  # type: ignore[method-assign]


def _no_job_log() -> None:
    import workers.tasks  # noqa: F401  (registers the hooks first, so they can be taken out)
    from shared import hooks
    from workers import job_logging

    hooks.around_perform[:] = [f for f in hooks.around_perform if f is not job_logging.measure_job]


def _prefetch_4() -> None:
    from celery.signals import worker_init

    # The worker read worker_prefetch_multiplier before --include modules load; worker_init comes after
    # them and before the consumer takes the value from the WorkController.
    def set_prefetch(sender: Any = None, **_: Any) -> None:
        sender.prefetch_multiplier = 4

    worker_init.connect(set_prefetch, weak=False)


APPLY = {
    "concurrency-4": [],
    "prefetch-4": [_prefetch_4],
    "no-publish": [_no_publish],
    "no-job-log": [_no_job_log],
    "threads-pool": [],
}

for _name in filter(None, NAME.split("+")):
    for _fn in APPLY.get(_name, []):
        _fn()
