"""The Questboard web app with P2 prototypes applied in memory (``BENCH_WEB_PROTO``, ``+``-separated), for
``gunicorn benchmarks.proto_web:app``. No project file is edited.

- ``switch=MS``: ``sys.setswitchinterval(MS / 1000)`` (CPython's default is 5 ms). A request thread that
  comes back from I/O (a SQLite statement, a Redis reply) waits for the GIL up to one interval while
  another thread computes; the thread holding the SQLite write gate waits too, with every other submit
  queued behind it.
- ``requests=N``: at most N requests (not Socket.IO) run the app at once; the others wait on a semaphore
  (no GIL contention while they wait).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

PROTO = dict(
    (part.split("=", 1) + [""])[:2] for part in os.environ.get("BENCH_WEB_PROTO", "").split("+") if part
)

if "switch" in PROTO:
    sys.setswitchinterval(float(PROTO["switch"]) / 1000)

from web.wsgi import app  # noqa: E402

if "requests" in PROTO:
    _slots = threading.BoundedSemaphore(int(PROTO["requests"]))
    _inner = app.wsgi_app

    def _limited(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/socket.io"):
            return _inner(environ, start_response)
        with _slots:
            return list(_inner(environ, start_response))

    app.wsgi_app = _limited  # type: ignore[method-assign]

__all__ = ["app"]
