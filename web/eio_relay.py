"""Long-polling Socket.IO clients work on a multi-process web without a sticky proxy.

An Engine.IO session lives in the process that opened it. A websocket client is one long request, held by
that process, so any number of processes can share a port; a long-polling client is a series of requests,
and gunicorn's processes accept them in turn, so most would reach a process that does not know the session
(Engine.IO answers those ``400 Invalid session``). Here each web process names the sessions it opens after
itself (the first ``TAG_LEN`` characters of the sid) and listens on a private Unix socket of that name; a
polling request for another process's session is passed to that process over its socket, and the answer
passed back. A held long-poll waits in a greenlet of the relaying process (gevent), not a thread.

Only the polling transport is relayed. A websocket upgrade for another process's session is refused (the
owner never sees it, so the client keeps polling, which works); a client that starts with the websocket
transport never needs the relay. The socket is in Linux's abstract namespace (no file to clean up or
leave behind); what it serves is the Engine.IO endpoint the public port serves anyway, and nothing else.
An abstract socket has no file permissions, so both ends check who is on the other side (``SO_PEERCRED``):
a process listens only to, and relays only to, processes of its own user — another local user cannot
take over a dead process's name to receive its clients' cookies, nor talk to the socket directly. A
relayed body is refused (413) past Engine.IO's own size limit before any of it is read. Elsewhere, or
without gevent, there is no relay and polling needs one process or a sticky proxy (docs/operations.md).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import secrets
import socket
import struct
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

logger = logging.getLogger(__name__)

TAG_LEN = 10
SOCKET_PREFIX = "\0questboard-eio-"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
# Engine.IO holds a long-poll for at most its ping interval; the relay waits a little longer than that.
RELAY_TIMEOUT_S = 60.0

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def supported() -> bool:
    """The relay needs Linux's abstract Unix sockets and gevent (a held long-poll costs a greenlet)."""
    monkey = sys.modules.get("gevent.monkey")
    return sys.platform.startswith("linux") and monkey is not None and monkey.is_module_patched("socket")


def peer_uid(sock: socket.socket) -> int | None:
    """The user id of the process on the other end of a connected Unix socket (None if unknown)."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (AttributeError, OSError):
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def _ours(sock: socket.socket) -> bool:
    return peer_uid(sock) == os.getuid()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, address: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._address = address

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._address)
            if not _ours(sock):  # someone else holds the name (its process is gone): not ours to use
                raise ConnectionRefusedError(f"the relay socket {self._address!r} is another user's")
        except OSError:
            sock.close()
            raise
        self.sock = sock


class EngineIORelay:
    """WSGI middleware of one web process: relays polling requests of other processes' sessions."""

    def __init__(self, app: WSGIApp, eio: Any, path: str = "/socket.io") -> None:
        self._app = app
        self._path = path.rstrip("/") + "/"
        self.tag = secrets.token_hex(TAG_LEN // 2)
        self._server: Any = None
        self._max_body = int(getattr(eio, "max_http_buffer_size", 1_000_000) or 1_000_000)
        own_id = eio.generate_id
        eio.generate_id = lambda: self.tag + own_id()  # every session this process opens carries its tag

    @staticmethod
    def address(tag: str) -> str:
        return SOCKET_PREFIX + tag

    def start(self) -> None:
        """Listen for relayed requests (in this process: call it after the fork)."""
        from gevent.pywsgi import WSGIServer

        class _OwnUserServer(WSGIServer):  # type: ignore[misc]
            def handle(self, sock: Any, address: Any) -> None:
                if not _ours(sock):  # only this user's web processes relay here
                    sock.close()
                    return
                super().handle(sock, address)

        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.address(self.tag))
        listener.listen(1024)
        self._server = _OwnUserServer(listener, self._engineio_only, log=None, error_log=logger)
        self._server.start()

    def _engineio_only(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """What the relay socket serves: the Engine.IO endpoint, nothing else of the app."""
        if not environ.get("PATH_INFO", "").startswith(self._path):
            return _error(start_response, "404 Not Found", "the relay serves only the Socket.IO endpoint")
        return self._app(environ, start_response)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        owner = self._owner(environ)
        if owner is None:
            return self._app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _error(start_response, "400 Bad Request", "Content-Length is not a number")
        if length > self._max_body:  # refused before any of it is read or held
            return _error(start_response, "413 Request Entity Too Large", "the request body is too large")
        try:
            status, headers, body = self._relay(owner, environ)
        except OSError:  # that process is gone: Engine.IO answers as for any unknown session
            return self._app(environ, start_response)
        except http.client.HTTPException:  # it went away in the middle of its answer
            return _error(start_response, "502 Bad Gateway", "the web process of this session did not answer")
        start_response(status, headers)
        return [body]

    def _owner(self, environ: dict[str, Any]) -> str | None:
        """The tag of the process that holds this polling request's session, when that is another one."""
        if not environ.get("PATH_INFO", "").startswith(self._path) or "HTTP_UPGRADE" in environ:
            return None
        sid = parse_qs(environ.get("QUERY_STRING", "")).get("sid", [""])[0]
        tag = sid[:TAG_LEN]
        if len(sid) <= TAG_LEN or tag == self.tag or not all(c in "0123456789abcdef" for c in tag):
            return None
        return tag

    def _relay(self, owner: str, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key[5:].lower().replace("_", "-") not in HOP_BY_HOP
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        headers["Content-Length"] = str(len(body))
        target = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        connection = _UnixConnection(self.address(owner), RELAY_TIMEOUT_S)
        try:
            connection.request(environ["REQUEST_METHOD"], target, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            return f"{response.status} {response.reason}", kept, data
        finally:
            connection.close()


def _error(start_response: Callable[..., Any], status: str, message: str) -> Iterable[bytes]:
    """The API's error shape (contract §3; ``web.auth.api_error``, which needs Flask: the relay is outside
    it), its code from the status as the API's HTTP errors have theirs (``web.api``)."""
    code = status.split(" ", 1)[1].lower().replace(" ", "_")
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
