"""The long-polling relay between web processes (web.eio_relay): what it refuses before relaying, and who
it talks to over its abstract Unix sockets (they have no file permissions, so it checks the peer)."""

from __future__ import annotations

import io
import json
import os
import socket
from typing import Any

import pytest

from web import eio_relay

OTHER_TAG = "0123456789"


class _Eio:
    max_http_buffer_size = 1000

    @staticmethod
    def generate_id() -> str:
        return "sessionid"


class _Exploding(io.RawIOBase):
    def read(self, *_: Any) -> bytes:
        raise AssertionError("the body was read")


def _call(relay: eio_relay.EngineIORelay, **environ: Any) -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    base = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/socket.io/",
        "QUERY_STRING": f"EIO=4&transport=polling&sid={OTHER_TAG}rest",
        "wsgi.input": _Exploding(),
    }
    body = b"".join(relay({**base, **environ}, start_response))
    return seen["status"], seen["headers"], body


def _local_app(calls: list[str]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ["PATH_INFO"])
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"Invalid session"]

    return app


def test_a_body_past_engineio_limit_is_refused_before_it_is_read() -> None:
    """The relay read a relayed body whole, whatever length it claimed, outside Engine.IO's own limit:
    a few made-up uploads could fill a web process's memory. Now 413, with none of it read."""
    calls: list[str] = []
    relay = eio_relay.EngineIORelay(_local_app(calls), _Eio())
    status, headers, body = _call(relay, CONTENT_LENGTH=str(10**9))
    assert status.startswith("413")
    error = json.loads(body)["error"]
    assert headers["Content-Type"] == "application/json" and error["code"] == "request_entity_too_large"
    assert "too large" in error["message"]
    assert calls == []
    status, _, body = _call(relay, CONTENT_LENGTH="lots")
    assert status.startswith("400") and json.loads(body)["error"]["code"] == "bad_request"


def test_the_relay_socket_serves_only_the_engineio_endpoint() -> None:
    calls: list[str] = []
    relay = eio_relay.EngineIORelay(_local_app(calls), _Eio())
    seen: list[str] = []
    out = relay._engineio_only({"PATH_INFO": "/api/jobs"}, lambda status, headers: seen.append(status))
    assert seen == ["404 Not Found"] and b"Socket.IO" in b"".join(out) and calls == []


def _as_nobody() -> None:
    os.setgid(65534)
    os.setuid(65534)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs a child as another user (needs root)")


@needs_root
def test_a_socket_name_held_by_another_user_gets_no_relayed_request() -> None:
    """Another local user who takes a dead web process's socket name (abstract names have no file
    permissions) would have received its clients' polls, cookies included. The relay checks the listener's
    user and, finding another, answers from the local process (Engine.IO: unknown session) instead."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the squatter: binds the owner's name as user nobody and reports any byte it receives
        try:
            os.close(read_end)
            _as_nobody()
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(eio_relay.EngineIORelay.address(OTHER_TAG))
            listener.listen(8)
            os.write(write_end, b"L")
            conn, _ = listener.accept()
            conn.settimeout(5)
            try:
                data = conn.recv(100)
            except OSError:
                data = b""
            os.write(write_end, b"D" if data else b"-")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 1) == b"L"
        calls: list[str] = []
        relay = eio_relay.EngineIORelay(_local_app(calls), _Eio())
        status, _, body = _call(relay, REQUEST_METHOD="GET")
        assert status.startswith("400") and body == b"Invalid session"
        assert calls == ["/socket.io/"]  # answered here
        assert os.read(read_end, 1) == b"-"  # the squatter got nothing
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(read_end)


@needs_root
def test_peer_credentials_name_the_other_end() -> None:
    """Both ends use SO_PEERCRED: a connection from this user is ours, one from another user is not."""
    name = "\0questboard-eio-test-" + os.urandom(4).hex()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(name)
    listener.listen(2)
    try:
        mine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        mine.connect(name)
        conn, _ = listener.accept()
        assert eio_relay.peer_uid(conn) == os.getuid() and eio_relay._ours(conn)
        conn.close()
        mine.close()
        pid = os.fork()
        if pid == 0:
            try:
                _as_nobody()
                theirs = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                theirs.connect(name)
                theirs.recv(1)
            finally:
                os._exit(0)
        conn, _ = listener.accept()
        try:
            assert eio_relay.peer_uid(conn) == 65534 and not eio_relay._ours(conn)
        finally:
            conn.close()
            os.waitpid(pid, 0)
    finally:
        listener.close()
