"""The web holds connections and scales out (issue 19), against the shipped server (shared.webserver).

Anyone can open websockets that never authenticate, or send request headers a byte at a time: with the
old server (one process, 100 threads) ~100 of them stalled /healthz for everyone. Here hundreds are held
(tests.idle_clients, reopened whenever the server closes one) while /healthz answers and a signed-in
client keeps getting its job's updates; the server closes the anonymous ones after LIVE_AUTH_TIMEOUT_S
and the slow ones after WEB_HEADER_TIMEOUT_S. Several web processes share Socket.IO through Redis and the
sessions through the database, without sticky sessions.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from questboard.testing import ManagedProcess, http_ok, wait_for, web_process
from shared import defaults
from tests.integration.test_live_updates import Listener, _submit
from tests.security.test_live_revocation import sign_out
from tests.security.test_sessions import browser_session, page_status, socket_connects, with_cookie

ANONYMOUS, SLOW = 300, 150
HEALTHZ_DEADLINE_S = 2.0  # per request, while the load is held: it answers at all, not a micro-timing
MARGIN_S = 3.0  # the server's sweep and close, and accept delays on a busy 2-core machine


class IdleLoad:
    """tests.idle_clients in its own process, and the JSON lines it reports."""

    def __init__(self, base: str, log_dir: Path, env: dict[str, str], **counts: int) -> None:
        args = [f"--{kind}={n}" for kind, n in counts.items()]
        argv = [sys.executable, "-m", "tests.idle_clients", base, *args, "--report-s", "0.25"]
        self.process = ManagedProcess(f"idle-{len(list(log_dir.glob('idle-*')))}", argv, env, log_dir)
        self.process.start()

    def reports(self) -> list[dict]:
        lines = self.process.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def holding(self, **counts: int) -> bool:
        if not self.process.alive():
            raise RuntimeError(f"load exited:\n{self.process.output()[-3000:]}")
        reports = self.reports()
        return bool(reports) and all(reports[-1]["open"].get(kind, 0) >= n for kind, n in counts.items())

    def lifetimes(self, kind: str) -> list[float]:
        return [s for report in self.reports() for s in report["lifetimes"][kind]]

    def stop(self) -> None:
        self.process.stop(timeout_s=10)


@pytest.fixture
def idle_load(live_server: str, tmp_path: Path, env: dict[str, str]) -> Iterator[Callable[..., IdleLoad]]:
    started: list[IdleLoad] = []

    def start(**counts: int) -> IdleLoad:
        load = IdleLoad(live_server, tmp_path, env, **counts)
        started.append(load)
        wait_for(lambda: load.holding(**counts), 60, 0.1, what=f"the server to hold {counts}")
        return load

    yield start
    for load in started:
        load.stop()


def _healthz_s(base: str) -> float:
    began = time.monotonic()
    response = requests.get(base + "/healthz", timeout=HEALTHZ_DEADLINE_S)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    return time.monotonic() - began


def test_healthz_and_live_updates_hold_under_anonymous_and_slow_connections(
    live_server, worker, alice, idle_load
):
    load = idle_load(anonymous=ANONYMOUS, slow=SLOW)
    listener = Listener(live_server, alice.token)
    try:
        job_id = _submit(live_server, alice, {"steps": 40, "step_ms": 150})
        listener.subscribe(job_id)
        # For longer than both timeouts, so the server also closes, and the load reopens, every one of them.
        until = time.monotonic() + max(defaults.LIVE_AUTH_TIMEOUT_S, defaults.WEB_HEADER_TIMEOUT_S) + 2
        answered = held = 0
        while time.monotonic() < until:
            _healthz_s(live_server)  # raises on a timeout: one bad actor must not block everyone
            answered += 1
            # The load reopens what the server closes; on a busy machine that takes a moment, so the load
            # must be in place for most of the window rather than at every single sample.
            held += load.holding(anonymous=ANONYMOUS * 0.8, slow=SLOW * 0.8)
            time.sleep(0.05)
        assert answered > 20 and held >= answered // 2, (answered, held)
        wait_for(lambda: any(u["status"] == "succeeded" for u in listener.of(job_id)), 30, what="the end")
        running = [u["progress"] for u in listener.of(job_id) if u["status"] == "running"]
        assert running == sorted(running) and len(running) >= 20  # a live stream, not only the replay
        assert listener.sio.connected  # an authenticated connection is not closed by the gate
        # The server did close them: waited for, since on a busy machine the slow ones may have been opened
        # late in the window and not have reached their timeout when the job ended.
        closing_s = max(defaults.LIVE_AUTH_TIMEOUT_S, defaults.WEB_HEADER_TIMEOUT_S) + 2 * MARGIN_S
        wait_for(
            lambda: load.lifetimes("anonymous") and load.lifetimes("slow"),
            closing_s,
            what="the server to close anonymous and slow connections",
        )
    finally:
        listener.close()


def test_anonymous_websockets_and_slow_headers_are_closed_by_the_server(live_server, idle_load):
    load = idle_load(anonymous=20, slow=20)
    for kind, timeout_s in (
        ("anonymous", defaults.LIVE_AUTH_TIMEOUT_S),
        ("slow", defaults.WEB_HEADER_TIMEOUT_S),
    ):
        wait_for(lambda k=kind: len(load.lifetimes(k)) >= 20, timeout_s + 2 * MARGIN_S, what=f"{kind} closed")
        lifetimes = load.lifetimes(kind)
        assert min(lifetimes) >= timeout_s - 0.5, (kind, lifetimes)
        assert max(lifetimes) <= timeout_s + MARGIN_S, (kind, lifetimes)


def test_a_refused_socketio_connect_is_closed_too(live_server):
    """A client refused by /jobs (no credentials) keeps its Engine.IO connection only until the timeout."""
    import websocket

    ws = websocket.create_connection(
        live_server.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket", timeout=30
    )
    opened = time.monotonic()
    try:
        assert ws.recv().startswith("0")
        ws.send("40/jobs,")  # no token, no cookie
        assert ws.recv().startswith("44/jobs,")  # CONNECT_ERROR
        while ws.recv():  # pings and the close, until the server ends the connection
            pass
    except websocket.WebSocketConnectionClosedException:
        pass
    finally:
        ws.close()
    assert time.monotonic() - opened <= defaults.LIVE_AUTH_TIMEOUT_S + MARGIN_S


@pytest.fixture
def two_webs(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two web processes of one installation, each on its own port."""
    procs = [web_process(env, tmp_path) for _ in range(2)]
    try:
        for proc, _base in procs:
            proc.start()
        for _proc, base in procs:
            wait_for(lambda b=base: http_ok(b + "/healthz"), 30, what="web server")
        yield procs[0][1], procs[1][1]
    finally:
        for proc, _base in procs:
            proc.stop(timeout_s=10)


def test_a_client_of_one_process_gets_updates_and_sign_out_reaches_the_other(
    two_webs, worker, accounts, alice
):
    one, other = two_webs
    listener = Listener(one, alice.token)
    try:
        job_id = _submit(other, alice, {"steps": 3, "step_ms": 50})  # submitted through the other process
        listener.subscribe(job_id)
        wait_for(lambda: any(u["status"] == "succeeded" for u in listener.of(job_id)), 30, what="the end")
    finally:
        listener.close()

    browser = browser_session(one, accounts, alice)
    cookie = browser.cookies["session"]
    assert socket_connects(other, cookie=cookie) and page_status(browser, other)[0] == 200
    sign_out(one, browser)
    assert not socket_connects(other, cookie=cookie)
    status, location = page_status(with_cookie(cookie), other)  # a copy of the old cookie
    assert status == 302 and "/login" in location


def _connections_by_process(pids: list[str], port: int) -> dict[str, int]:
    """How many established TCP connections to ``port`` each of ``pids`` holds (from /proc)."""
    established = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            established.add(fields[9])  # the socket's inode
    counts = {}
    for pid in pids:
        links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir() if fd.is_symlink()]
        counts[pid] = sum(link.removeprefix("socket:[").rstrip("]") in established for link in links)
    return counts


def test_web_concurrency_processes_share_one_port_for_websocket_clients(env, tmp_path, worker, alice):
    proc, base = web_process(env, tmp_path, workers=2)
    proc.start()
    listeners: list[Listener] = []
    try:
        wait_for(lambda: http_ok(base + "/healthz"), 30, what="web server")
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 2  # gunicorn's two worker processes
        job_id = _submit(base, alice, {"steps": 20, "step_ms": 100})
        port = int(base.rsplit(":", 1)[1])
        # Websocket clients, each on whichever process accepted it, until both processes hold some.
        while len(listeners) < 40 and min(_connections_by_process(children, port).values()) == 0:
            listeners.append(Listener(base, alice.token))
        assert min(_connections_by_process(children, port).values()) > 0
        for listener in listeners:
            listener.subscribe(job_id)
        for listener in listeners:
            wait_for(lambda li=listener: any(u["status"] == "succeeded" for u in li.of(job_id)), 30)
    finally:
        for listener in listeners:
            listener.close()
        proc.stop(timeout_s=10)


def test_a_submit_waiting_for_the_sqlite_write_gate_does_not_hold_up_its_process(live_server, alice, db_url):
    """Another process holds the host's SQLite write gate (shared.db): the submit waits, /healthz does not."""
    outcome: dict[str, int] = {}

    def submit() -> None:
        outcome["status"] = requests.post(
            live_server + "/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers, timeout=30
        ).status_code

    gate = os.open(db_url.removeprefix("sqlite:///") + "-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)
        waiting = threading.Thread(target=submit)
        waiting.start()
        inode = f":{os.fstat(gate).st_ino} "
        wait_for(
            lambda: any(
                "->" in line and inode in line for line in Path("/proc/locks").read_text().splitlines()
            ),
            10,
            what="the submit to wait for the gate",
        )
        for _ in range(5):
            assert _healthz_s(live_server) < HEALTHZ_DEADLINE_S
        assert waiting.is_alive() and "status" not in outcome
        fcntl.flock(gate, fcntl.LOCK_UN)
        waiting.join(30)
    finally:
        os.close(gate)
    assert outcome["status"] == 202
