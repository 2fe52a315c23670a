"""The Questboard web app with P2 prototypes applied in memory (``BENCH_WEB_PROTO``, ``+``-separated), for
``gunicorn benchmarks.proto_web:app``. No project file is edited.

- ``submit-lock``: JobService.submit runs under one process-wide threading.Lock, so the web's threads queue
  on a Python lock instead of meeting on SQLite's write lock (whose busy handler sleeps 1, 2, 5, 10, ...
  up to 100 ms between tries, which is what makes the p99 under concurrency).
- ``no-sent-event``: the web's Celery app does not publish a task-sent event per submit.
"""

from __future__ import annotations

import os
import threading
from typing import Any

PROTO = set(filter(None, os.environ.get("BENCH_WEB_PROTO", "").split("+")))

if "submit-lock" in PROTO:
    from shared.jobs import JobService

    _lock = threading.Lock()
    _submit = JobService.submit

    def submit(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _lock:
            return _submit(self, *args, **kwargs)

    JobService.submit = submit  # type: ignore[method-assign]

from web.wsgi import app  # noqa: E402

if "no-sent-event" in PROTO:
    svc = app.extensions["questboard"]
    svc.jobs.dispatcher._app.conf.task_send_sent_event = False

__all__ = ["app"]
