"""Socket.IO namespace /jobs: who may connect, subscribe and watch, with the Python and the npm client.

Against the real web server (gunicorn). Job updates are made by submitting and canceling jobs over the
API (each change is published through Redis), so no worker is needed. Every "nothing arrived" check has
a control client that did receive the same updates in the same window.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import requests
import socketio
import websocket

from questboard.testing import wait_for

NODE_DIR = Path(__file__).parent / "node"
PROBE = "diagnostics.probe"


class Listener:
    """A python-socketio client of /jobs recording every job:update and error."""

    def __init__(self, base_url: str, token: str | None, **connect: object) -> None:
        self.updates: list[dict] = []
        self.errors: list[dict] = []
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("job:update", self.updates.append, namespace="/jobs")
        self.sio.on("error", self.errors.append, namespace="/jobs")
        auth = {"token": token} if token is not None else None
        options = {"transports": ["websocket"], "wait_timeout": 10, **connect}
        self.sio.connect(base_url, namespaces=["/jobs"], auth=auth, **options)

    def call(self, event: str, data: dict) -> None:
        """Emit and wait until the server handled it (its acknowledgement)."""
        self.sio.call(event, data, namespace="/jobs", timeout=10)

    def ids(self) -> set[str]:
        return {u["id"] for u in list(self.updates)}

    def close(self) -> None:
        self.sio.disconnect()


@pytest.fixture
def listen(live_server):
    made: list[Listener] = []

    def make(token: str | None, **connect: object) -> Listener:
        listener = Listener(live_server, token, **connect)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()


def submit(base: str, person) -> str:
    response = requests.post(f"{base}/api/jobs", json={"type": PROBE}, headers=person.headers, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def cancel(base: str, person, job_id: str) -> None:
    assert (
        requests.post(f"{base}/api/jobs/{job_id}/cancel", headers=person.headers, timeout=10).status_code
        == 202
    )


def session_cookie(base: str, accounts, person) -> str:
    link = accounts.create_magic_link(person.user, base)
    browser = requests.Session()
    assert browser.get(link, timeout=10, allow_redirects=False).status_code == 302
    return browser.cookies["session"]


# ----- python-socketio --------------------------------------------------------------------------------


def test_connecting_needs_a_token_or_a_session_from_our_own_origin(live_server, accounts, alice, listen):
    for token in (None, "not-a-token", f"{alice.token}x", ""):
        with pytest.raises(socketio.exceptions.ConnectionError):
            listen(token)
    cookie = session_cookie(live_server, accounts, alice)
    handshake = f"{live_server}/socket.io/?EIO=4&transport=polling"
    own = requests.get(handshake, headers={"Cookie": f"session={cookie}", "Origin": live_server}, timeout=5)
    foreign = requests.get(
        handshake, headers={"Cookie": f"session={cookie}", "Origin": "http://evil.example"}, timeout=5
    )
    assert own.status_code == 200 and foreign.status_code == 400  # no cross-site Socket.IO with our cookie
    ws_url = live_server.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(
            ws_url, origin="http://evil.example", cookie=f"session={cookie}", timeout=5
        )
    listen(None, headers={"Cookie": f"session={cookie}"}).call(
        "watch", {"scope": "mine"}
    )  # the page's way in


def test_another_users_job_is_not_found_and_sends_nothing(live_server, alice, bob, listen):
    job_id = submit(live_server, alice)
    spy, owner = listen(bob.token), listen(alice.token)
    spy.call("subscribe", {"job_id": job_id})
    owner.call("subscribe", {"job_id": job_id})
    assert spy.errors == [{"job_id": job_id, "code": "not_found"}]
    cancel(live_server, alice, job_id)
    wait_for(lambda: any(u["status"] == "canceled" for u in owner.updates), 10, what="the owner's update")
    assert spy.updates == []
    spy.call("subscribe", {"job_id": "no-such-job"})  # a missing job answers the same as another's
    assert spy.errors[-1] == {"job_id": "no-such-job", "code": "not_found"}


def test_only_operators_watch_every_job(live_server, alice, bob, admin, listen):
    bobs = listen(bob.token)
    bobs.call("watch", {"scope": "all"})
    assert bobs.errors == [{"scope": "all", "code": "forbidden"}]
    bobs.call("watch", {"scope": "mine"})
    admins, alices = listen(admin.token), listen(alice.token)
    admins.call("watch", {"scope": "all"})
    alices.call("watch", {"scope": "mine"})
    job_id = submit(live_server, alice)
    cancel(live_server, alice, job_id)
    own = submit(live_server, bob)
    wait_for(lambda: job_id in admins.ids() and own in admins.ids(), 10, what="the admin's updates")
    wait_for(lambda: own in bobs.ids() and job_id in alices.ids(), 10, what="each owner's updates")
    assert bobs.ids() == {own} and own not in alices.ids()


# ----- the npm socket.io-client -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def node_probe() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(
            "node and npm are needed for the socket.io-client checks (Debian: apt-get install nodejs npm)"
        )
    if not (NODE_DIR / "node_modules" / "socket.io-client").is_dir():
        subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300)
    return NODE_DIR / "probe.mjs"


class NodeClient:
    """``node probe.mjs`` with one scenario; lines of its output arrive on a queue."""

    def __init__(
        self, script: Path, base: str, token: str | None, emits: list, listen_ms: int = 1500
    ) -> None:
        scenario = {
            "auth": {"token": token} if token is not None else None,
            "emits": emits,
            "listen_ms": listen_ms,
        }
        self.proc = subprocess.Popen(
            ["node", str(script), base, json.dumps(scenario)], stdout=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def next_line(self, timeout_s: float = 20) -> str:
        return self.lines.get(timeout=timeout_s)

    def result(self) -> dict:
        line = self.next_line()
        while line == "ready":
            line = self.next_line()
        self.proc.wait(timeout=10)
        return json.loads(line)


def test_the_npm_client_gets_the_same_answers(node_probe, live_server, alice, bob, admin):
    for token in (None, "not-a-token"):
        refused = NodeClient(node_probe, live_server, token, []).result()
        assert refused["connected"] is False and refused["connect_error"], refused
    job_id = submit(live_server, alice)
    spy = NodeClient(
        node_probe, live_server, bob.token, [["subscribe", {"job_id": job_id}], ["watch", {"scope": "all"}]]
    )
    operator = NodeClient(node_probe, live_server, admin.token, [["watch", {"scope": "all"}]])
    assert spy.next_line() == "ready" and operator.next_line() == "ready"
    cancel(live_server, alice, job_id)
    other = submit(live_server, alice)
    seen_by_spy, seen_by_operator = spy.result(), operator.result()
    assert {"job_id": job_id, "code": "not_found"} in seen_by_spy["errors"]
    assert {"scope": "all", "code": "forbidden"} in seen_by_spy["errors"]
    assert seen_by_spy["updates"] == []
    assert {job_id, other} <= {u["id"] for u in seen_by_operator["updates"]}


def test_viewers_follow_any_job_they_may_look_at(live_server, accounts, settings, alice, listen):
    """A read-only operator sees every job page (contract §6), so its live updates too."""
    from tests.integration.test_admin_support import Viewer

    viewer = Viewer(accounts, settings)
    job_id = submit(live_server, alice)
    watcher = listen(viewer.token)
    watcher.call("subscribe", {"job_id": job_id})
    assert watcher.errors == []
    wait_for(lambda: job_id in watcher.ids(), 10, what="the replayed state")
    cancel(live_server, alice, job_id)
    wait_for(lambda: any(u["status"] == "canceled" for u in watcher.updates), 10, what="the viewer's update")
