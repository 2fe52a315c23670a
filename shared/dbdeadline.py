"""A client-side deadline for the statements of one process (the web's), for links that stop moving bytes.

PostgreSQL behind a link that silently stops forwarding gives the client no error at all: the query was
handed to the kernel, and the reply never comes (TCP keepalives and ``tcp_user_timeout`` only help when
the local end has unacknowledged data, which a proxy or a half-dead route does not guarantee). The
watch keeps the socket of every statement in flight; one that has run longer than its deadline has its
socket shut down, so the blocked call fails at once with an ``OperationalError`` that SQLAlchemy treats
as a disconnect (the connection is dropped from the pool) and the request answers 503 instead of hanging.

Only the web installs it: a worker's job body may legitimately run a long statement.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from sqlalchemy import Engine, event

log = logging.getLogger("questboard.db")

CHECK_EVERY_S = 0.25


class StatementDeadline:
    """Shuts down the socket of a statement that has run longer than ``deadline_s``."""

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self._inflight: dict[int, tuple[float, int]] = {}  # id(dbapi connection) -> (deadline, fd)
        self._lock = threading.Lock()
        threading.Thread(target=self._run, name="questboard-db-deadline", daemon=True).start()

    def install(self, engine: Engine) -> None:
        """Watch every statement of ``engine``, and the pool's pre-ping of a connection it hands out."""
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "handle_error", self._error)
        ping = engine.dialect.do_ping

        def do_ping(dbapi_connection: Any) -> bool:
            fd = getattr(getattr(dbapi_connection, "pgconn", None), "socket", None)
            self._watch(id(dbapi_connection), fd)
            try:
                return bool(ping(dbapi_connection))
            finally:
                self._unwatch(id(dbapi_connection))

        engine.dialect.do_ping = do_ping  # type: ignore[method-assign]

    def _watch(self, key: int, fd: int | None) -> None:
        if fd is not None:
            with self._lock:
                self._inflight[key] = (time.monotonic() + self.deadline_s, fd)

    def _unwatch(self, key: int) -> None:
        with self._lock:
            self._inflight.pop(key, None)

    @staticmethod
    def _fd(conn: Any) -> int | None:
        pgconn = getattr(conn.connection.dbapi_connection, "pgconn", None)  # psycopg 3
        return getattr(pgconn, "socket", None)

    def _before(self, conn: Any, *_: Any) -> None:
        self._watch(id(conn.connection.dbapi_connection), self._fd(conn))

    def _after(self, conn: Any, *_: Any) -> None:
        self._unwatch(id(conn.connection.dbapi_connection))

    def _error(self, context: Any) -> None:
        dbapi = getattr(context.connection, "connection", None) if context.connection is not None else None
        self._unwatch(id(getattr(dbapi, "dbapi_connection", None)))

    def _run(self) -> None:
        while True:
            time.sleep(CHECK_EVERY_S)
            now = time.monotonic()
            with self._lock:
                late = [(key, fd) for key, (due, fd) in self._inflight.items() if due <= now]
                for key, _fd in late:
                    self._inflight.pop(key, None)
            for _key, fd in late:
                log.warning("database statement past its deadline: dropping its connection", extra={"fd": fd})
                try:
                    with socket.socket(fileno=os.dup(fd)) as sock:
                        sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


_installed: dict[int, StatementDeadline] = {}
_install_lock = threading.Lock()


def install(engine: Engine, deadline_s: float) -> None:
    """Give ``engine`` a statement deadline once (the app may be built more than once per process)."""
    with _install_lock:
        if id(engine) not in _installed:
            watch = StatementDeadline(deadline_s)
            watch.install(engine)
            _installed[id(engine)] = watch
