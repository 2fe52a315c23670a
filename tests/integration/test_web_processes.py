"""Several web processes on one port, as `questboard web` runs them by default (one per core), unpinned.

Each update reaches each subscribed client once, whichever process holds it (Socket.IO's Redis message
queue: every process relays to its own clients only); a long-polling client works too (web.eio_relay passes
its requests to the process holding its session); a socket that never authenticates is closed; and a
subscription still checks who asks, on every process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio
import websocket

from questboard.testing import http_ok, wait_for, web_process
from shared import defaults
from tests.integration.test_web_capacity import _connections_by_process

PROCESSES = 2
CLIENTS = 6


@pytest.fixture
def multi_server(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """The shipped web server with PROCESSES processes: (base URL, the worker processes' pids)."""
    proc, base = web_process(env, tmp_path, workers=PROCESSES)
    proc.start()
    try:
        wait_for(lambda: http_ok(base + "/healthz"), 30, what="web server")
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == PROCESSES
        yield base, children
    finally:
        proc.stop(timeout_s=10)


class Client:
    """A Socket.IO client of /jobs that records every job:update and error it gets."""

    def __init__(self, base: str, token: str, transports: list[str] | None) -> None:
        self.updates: list[dict] = []
        self.errors: list[dict] = []
        self.lock = threading.Lock()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("job:update", self._record(self.updates), namespace="/jobs")
        self.sio.on("error", self._record(self.errors), namespace="/jobs")
        self.sio.connect(
            base, namespaces=["/jobs"], auth={"token": token}, transports=transports, wait_timeout=10
        )

    def _record(self, into: list[dict]):
        def record(data: dict) -> None:
            with self.lock:
                into.append(data)

        return record

    def emit(self, event: str, data: dict) -> None:
        self.sio.emit(event, data, namespace="/jobs")

    def of(self, job_id: str) -> list[dict]:
        with self.lock:
            return [u for u in self.updates if u["id"] == job_id]

    def finished(self, job_id: str) -> bool:
        return any(u["status"] == "succeeded" for u in self.of(job_id))

    def close(self) -> None:
        self.sio.disconnect()


def _submit(base: str, person, steps: int) -> str:
    response = requests.post(
        base + "/api/jobs",
        json={"type": "diagnostics.probe", "params": {"steps": steps, "step_ms": 50}},
        headers=person.headers,
        timeout=10,
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _watch_two_jobs(base: str, person, clients: list[Client]) -> tuple[str, str]:
    """Every client watches its user's jobs; a job runs, then a second as the barrier for late repeats."""
    for client in clients:
        client.emit("watch", {"scope": "mine"})

    def watching() -> bool:  # a client that got any update has joined its user's room
        if all(c.updates for c in clients):
            return True
        _submit(base, person, 1)
        return False

    wait_for(watching, 30, 0.5, what="every client to watch its user's jobs")
    first = _submit(base, person, 10)
    wait_for(lambda: all(c.finished(first) for c in clients), 30, what="every client to see the job finish")
    second = _submit(base, person, 1)  # any repeat of the first job's updates arrives before this one's
    wait_for(lambda: all(c.finished(second) for c in clients), 30, what="every client to see the barrier job")
    return first, second


def _assert_each_update_once(clients: list[Client], job_id: str) -> None:
    reference = clients[0].of(job_id)
    assert [u["progress"] for u in reference if u["status"] == "running"] == list(range(0, 101, 10))
    for client in clients:
        updates = client.of(job_id)
        assert updates == reference  # the same updates, in the same order, on every process
        keys = [(u["status"], u["progress"], u["attempts"]) for u in updates]
        assert len(keys) == len(set(keys))  # none twice
        assert [u["status"] for u in updates].count("succeeded") == 1


def test_websocket_clients_on_every_process_get_each_update_once(multi_server, worker, alice):
    base, children = multi_server
    port = int(base.rsplit(":", 1)[1])
    clients: list[Client] = []
    try:
        while len(clients) < CLIENTS or min(_connections_by_process(children, port).values()) == 0:
            assert len(clients) < 40, "every websocket landed on one process"
            clients.append(Client(base, alice.token, ["websocket"]))
        first, _ = _watch_two_jobs(base, alice, clients)
        _assert_each_update_once(clients, first)
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("transports", [["polling"], None], ids=["polling-only", "default-upgrade"])
def test_polling_clients_work_without_a_sticky_proxy(multi_server, worker, alice, transports):
    """Every poll lands on whichever process accepts it; those of another's session are relayed there."""
    base, _ = multi_server
    clients = [Client(base, alice.token, transports) for _ in range(CLIENTS)]
    try:
        first, _ = _watch_two_jobs(base, alice, clients)
        _assert_each_update_once(clients, first)
        assert not any(c.errors for c in clients)
    finally:
        for client in clients:
            client.close()


def test_a_subscription_checks_who_asks_on_every_process(multi_server, worker, alice, bob):
    base, _ = multi_server
    job_id = _submit(base, alice, 1)
    intruders = [Client(base, bob.token, transports) for transports in (["websocket"], ["polling"]) * 3]
    try:
        for intruder in intruders:
            intruder.emit("subscribe", {"job_id": job_id})
        wait_for(lambda: all(i.errors for i in intruders), 15, what="every intruder to be refused")
        for intruder in intruders:
            assert intruder.errors == [{"job_id": job_id, "code": "not_found"}]
            assert intruder.of(job_id) == []
    finally:
        for intruder in intruders:
            intruder.close()


def test_sockets_that_never_authenticate_are_closed_on_every_process(multi_server):
    base, children = multi_server
    port = int(base.rsplit(":", 1)[1])
    url = base.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    sockets = []
    held: set = set()  # the processes seen holding one of these sockets (the first may be closed already)
    try:
        while len(sockets) < 4 or len(held) < len(children):
            assert len(sockets) < 40, "every websocket landed on one process"
            ws = websocket.create_connection(url, timeout=defaults.LIVE_AUTH_TIMEOUT_S + 10)
            assert ws.recv().startswith("0")  # the Engine.IO open packet; no Socket.IO connect follows
            sockets.append(ws)
            held |= {child for child, n in _connections_by_process(children, port).items() if n}
        for ws in sockets:
            # Answer pings until the server closes the socket (recv returns the close, or raises).
            while True:
                try:
                    message = ws.recv()
                except (websocket.WebSocketConnectionClosedException, ConnectionError):
                    break
                if message == "2":
                    ws.send("3")
                elif not message:
                    break
        assert min(_connections_by_process(children, port).values()) == 0
    finally:
        for ws in sockets:
            ws.close()
