"""Open /jobs connections end with their credentials (sign-out, ``users revoke``, a token revoke, expiry).

Each connection is registered with the hash of what it connected with: a session id or an API token.
A background task of the web process re-checks them all every ``LIVE_RECHECK_INTERVAL_S`` (one query for
the sessions, one for the tokens) and disconnects, server side, the connections whose session or token
ended; a disconnected client leaves every room, so no further ``job:update`` reaches it. Sign-out
disconnects its session's connections in this process at once; other web processes follow at their next
check.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

from flask import current_app
from flask_socketio import SocketIO

from shared import defaults
from shared.accounts import hash_token
from shared.sessions import ServerSessions

logger = logging.getLogger(__name__)
EXTENSION = "questboard_live_guard"
SESSION, TOKEN = "session", "token"


class LiveGuard:
    """The credentials of this process's live connections of one namespace, and their re-check."""

    def __init__(self, socketio: SocketIO, namespace: str, store: ServerSessions) -> None:
        self._socketio = socketio
        self._namespace = namespace
        self._store = store
        self._lock = threading.Lock()
        self._credentials: dict[str, tuple[str, str]] = {}  # sid -> (SESSION | TOKEN, sha256 hex)
        self._checker_pid: int | None = None

    def add(self, sid: str, kind: str, secret: str) -> None:
        """Track a new connection made with ``secret`` (a session id or an API token)."""
        with self._lock:
            self._credentials[sid] = (kind, hash_token(secret))
            if self._checker_pid != os.getpid():  # one checker per process, also in a forked one
                self._checker_pid = os.getpid()
                self._socketio.start_background_task(self._check_forever)

    def remove(self, sid: str) -> None:
        """The connection is gone."""
        with self._lock:
            self._credentials.pop(sid, None)

    def end_session(self, session_id: str) -> None:
        """Sign-out: disconnect this process's connections of that session now."""
        ended = (SESSION, hash_token(session_id))
        with self._lock:
            sids = [sid for sid, credential in self._credentials.items() if credential == ended]
        self._disconnect(sids)

    def check(self) -> int:
        """Disconnect every connection whose session or token no longer holds; returns how many."""
        with self._lock:
            snapshot = dict(self._credentials)
        if not snapshot:
            return 0
        wanted = {kind: {h for k, h in snapshot.values() if k == kind} for kind in (SESSION, TOKEN)}
        holding = {(SESSION, h) for h in self._store.holding_sessions(wanted[SESSION])}
        holding |= {(TOKEN, h) for h in self._store.holding_tokens(wanted[TOKEN])}
        ended = [sid for sid, credential in snapshot.items() if credential not in holding]
        self._disconnect(ended)
        return len(ended)

    def _check_forever(self) -> None:
        while True:
            self._socketio.sleep(defaults.LIVE_RECHECK_INTERVAL_S)
            try:
                self.check()
            except Exception:  # a database hiccup must not end the checks for good
                logger.exception("re-checking live connections failed; trying again")

    def _disconnect(self, sids: Iterable[str]) -> None:
        server = self._socketio.server
        for sid in sids:
            with self._lock:
                if self._credentials.pop(sid, None) is None:
                    continue  # it went away meanwhile
            logger.info("disconnecting a live connection whose access ended", extra={"sid": sid})
            # Locally (this process holds the connection): the error first, then the disconnect, in order.
            server.emit(
                "error", {"code": "unauthorized"}, to=sid, namespace=self._namespace, ignore_queue=True
            )
            server.disconnect(sid, namespace=self._namespace, ignore_queue=True)


def end_session_connections(session_id: str) -> None:
    """Sign-out in this app: its live connections of the session end at once (no-op without a guard)."""
    guard = current_app.extensions.get(EXTENSION)
    if guard is not None:
        guard.end_session(session_id)
