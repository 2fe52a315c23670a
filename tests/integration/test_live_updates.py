"""Socket.IO namespace /jobs with the python-socketio client, against the real web server and worker."""

from __future__ import annotations

import threading

import pytest
import requests
import socketio

from questboard.testing import wait_for


class Listener:
    def __init__(self, base_url: str, token: str | None) -> None:
        self.updates: list[dict] = []
        self.errors: list[dict] = []
        self.lock = threading.Lock()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("job:update", self._update, namespace="/jobs")
        self.sio.on("error", self._error, namespace="/jobs")
        auth = {"token": token} if token is not None else None
        self.sio.connect(base_url, namespaces=["/jobs"], auth=auth, transports=["websocket"], wait_timeout=10)

    def _update(self, data: dict) -> None:
        with self.lock:
            self.updates.append(data)

    def _error(self, data: dict) -> None:
        with self.lock:
            self.errors.append(data)

    def subscribe(self, job_id: str) -> None:
        self.sio.emit("subscribe", {"job_id": job_id}, namespace="/jobs")

    def of(self, job_id: str) -> list[dict]:
        with self.lock:
            return [u for u in self.updates if u["id"] == job_id]

    def close(self) -> None:
        self.sio.disconnect()


@pytest.fixture
def listen(live_server):
    made: list[Listener] = []

    def make(token: str | None) -> Listener:
        listener = Listener(live_server, token)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()


def _submit(base_url: str, person, params: dict) -> str:
    resp = requests.post(
        f"{base_url}/api/jobs",
        json={"type": "diagnostics.probe", "params": params},
        headers=person.headers,
        timeout=10,
    )
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def test_every_progress_step_arrives_in_order_and_the_final_state_last(live_server, worker, alice, listen):
    job_id = _submit(live_server, alice, {"steps": 5, "step_ms": 100, "fail_first_attempts": 1})
    listener = listen(alice.token)
    listener.subscribe(job_id)
    wait_for(lambda: any(u["status"] == "succeeded" for u in listener.of(job_id)), 30, what="final update")
    updates = listener.of(job_id)
    assert updates[-1]["status"] == "succeeded" and updates[-1]["progress"] == 100
    running = [u["progress"] for u in updates if u["status"] == "running" and u["attempts"] == 2]
    assert running == [0, 20, 40, 60, 80, 100]  # every step of the successful attempt, in order
    assert updates[-1]["attempts"] == 2
    assert set(updates[-1]) >= {"id", "type", "status", "progress", "message", "attempts", "result"}


def test_subscribe_replays_the_current_state_at_once(live_server, alice, listen):
    job_id = _submit(live_server, alice, {"steps": 3})  # no worker: it stays queued
    listener = listen(alice.token)
    listener.subscribe(job_id)
    first = wait_for(lambda: listener.of(job_id), 10, what="replay")[0]
    assert first["status"] == "queued" and first["progress"] == 0
    # A second (reconnected) client gets the same replay.
    again = listen(alice.token)
    again.subscribe(job_id)
    assert wait_for(lambda: again.of(job_id), 10)[0]["status"] == "queued"


def test_replay_after_finish_shows_the_final_state(live_server, worker, alice, listen):
    job_id = _submit(live_server, alice, {"steps": 2})
    wait_for(
        lambda: (
            requests.get(f"{live_server}/api/jobs/{job_id}", headers=alice.headers, timeout=5).json()[
                "status"
            ]
            == "succeeded"
        ),
        30,
    )
    listener = listen(alice.token)
    listener.subscribe(job_id)
    replay = wait_for(lambda: listener.of(job_id), 10)[0]
    assert replay["status"] == "succeeded" and replay["progress"] == 100


def test_another_users_job_gets_not_found_and_no_updates(live_server, worker, alice, bob, listen):
    job_id = _submit(live_server, alice, {"steps": 3, "step_ms": 50})
    spy = listen(bob.token)
    spy.subscribe(job_id)
    wait_for(lambda: spy.errors, 10, what="error event")
    assert spy.errors[0] == {"job_id": job_id, "code": "not_found"}
    owner = listen(alice.token)
    owner.subscribe(job_id)
    wait_for(lambda: any(u["status"] == "succeeded" for u in owner.of(job_id)), 30)
    assert spy.of(job_id) == []


def test_connect_without_valid_credentials_is_refused(live_server):
    for token in (None, "not-a-token"):
        with pytest.raises(socketio.exceptions.ConnectionError):
            Listener(live_server, token)


def test_a_batch_of_updates_is_one_publish_and_arrives_whole_and_in_order(
    live_server, redis_server, alice, listen
):
    """The workers send a commit's updates of one user as one PUBLISH (shared.publisher); every web
    process unpacks it into the job:update messages, in order."""
    from shared.publisher import SocketIOPublisher

    job_id = _submit(live_server, alice, {"steps": 1})  # no worker: it stays queued
    listener = listen(alice.token)
    listener.subscribe(job_id)
    wait_for(lambda: listener.of(job_id), 10, what="the replay of the queued job")
    client = redis_server.client()
    client.config_resetstat()
    updates = [
        {"id": job_id, "status": "running", "progress": p, "message": f"step {p}", "attempts": 1}
        for p in (10, 20, 30)
    ]
    SocketIOPublisher(redis_server.url).job_updates(updates, alice.user.id)
    wait_for(lambda: len(listener.of(job_id)) >= 4, 10, what="the batched updates")
    assert [u["progress"] for u in listener.of(job_id)[1:]] == [10, 20, 30]
    assert client.info("commandstats")["cmdstat_publish"]["calls"] == 1
