"""The web server's command line: gunicorn's gevent worker, several processes, Socket.IO over Redis.

Each process is evented (gevent, monkey-patched by the worker before the app is imported), so an idle
websocket or a slow client costs a greenlet, not a thread. The processes share Socket.IO through the
Redis message queue. A websocket client is one request, held by one process; a long-polling client's
requests are passed to the process that holds its session (web.eio_relay). Several hosts or containers
behind one balancer need websocket clients or a sticky proxy for polling (docs/operations.md).

gunicorn's gevent worker reads each request head under a ``gevent.Timeout`` of ``--keep-alive``: that is
what cuts a client that sends its headers slowly (``--timeout`` is only the worker heartbeat there).
"""

from __future__ import annotations

import os

from shared import defaults

WSGI_APP = "web.wsgi:app"


def web_concurrency(environ: dict[str, str] | None = None) -> int:
    """Web processes to run: ``WEB_CONCURRENCY`` if set (and not empty), else one per core."""
    value = (os.environ if environ is None else environ).get("WEB_CONCURRENCY", "").strip()
    if not value:
        return os.cpu_count() or 1
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"WEB_CONCURRENCY must be a whole number >= 1, not {value!r}")
    return int(value)


def gunicorn_args(
    bind: str,
    workers: int,
    graceful_timeout_s: int = defaults.WEB_GRACEFUL_TIMEOUT_S,
    access_log: bool = True,
) -> list[str]:
    """gunicorn's arguments (after ``python -m gunicorn``) for the web on ``bind`` (``host:port``)."""
    args = [
        "--worker-class",
        "gevent",
        "--workers",
        str(workers),
        "--worker-connections",
        str(defaults.WEB_WORKER_CONNECTIONS),
        "--keep-alive",
        str(defaults.WEB_HEADER_TIMEOUT_S),
        "--bind",
        bind,
        "--graceful-timeout",
        str(graceful_timeout_s),
        "--no-control-socket",
    ]
    if access_log:
        args += ["--access-logfile", "-"]
    return [*args, WSGI_APP]
