"""Engine.IO connections that never authenticate are closed after a few seconds.

Opening a websocket costs a client nothing, and the Socket.IO handshake needs no credentials: only the
connect to ``/jobs`` does (``web.live``). Every Engine.IO connection is noted when it opens; one
background task per web process closes, ``timeout_s`` later, each that is not by then connected to
``/jobs`` — never sent the connect, was refused it, or sits in another namespace. Connections are noted
in the order they open and all wait the same time, so the task only ever looks at the oldest.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from typing import Any

from flask_socketio import SocketIO

logger = logging.getLogger(__name__)


class LiveGate:
    """Closes this process's Engine.IO connections that are not in ``namespace`` after ``timeout_s``."""

    def __init__(self, socketio: SocketIO, namespace: str, timeout_s: float) -> None:
        self._socketio = socketio
        self._namespace = namespace
        self._timeout_s = timeout_s
        self._pending: deque[tuple[float, str]] = deque()  # (deadline, eio sid), oldest first
        self._sweeper_pid: int | None = None

    def install(self) -> None:
        """Hook the Engine.IO server's connect event (after Socket.IO's own handler, which it keeps)."""
        eio = self._socketio.server.eio
        inner = eio.handlers["connect"]

        def on_connect(eio_sid: str, environ: dict[str, Any]) -> Any:
            result = inner(eio_sid, environ)
            self.note(eio_sid)
            return result

        eio.on("connect", on_connect)

    def note(self, eio_sid: str) -> None:
        """A connection opened: it has ``timeout_s`` to connect to the namespace."""
        self._pending.append((time.monotonic() + self._timeout_s, eio_sid))
        if self._sweeper_pid != os.getpid():  # one sweeper per process, also in a forked one
            self._sweeper_pid = os.getpid()
            self._socketio.start_background_task(self._sweep_forever)

    def sweep(self) -> float:
        """Close the connections that are due and unauthenticated; returns seconds until the next is due."""
        server = self._socketio.server
        while self._pending:
            deadline, eio_sid = self._pending[0]
            wait_s = deadline - time.monotonic()
            if wait_s > 0:
                return wait_s
            self._pending.popleft()
            if server.manager.sid_from_eio_sid(eio_sid, self._namespace) is None:
                logger.debug(
                    "closing a live connection that did not authenticate", extra={"eio_sid": eio_sid}
                )
                server.eio.disconnect(eio_sid)  # a no-op for one that is gone already
        return self._timeout_s

    def _sweep_forever(self) -> None:
        while True:
            try:
                wait_s = self.sweep()
            except Exception:  # one bad close must not end the sweeps for good
                logger.exception("closing unauthenticated live connections failed; trying again")
                wait_s = 1.0
            self._socketio.sleep(wait_s)
