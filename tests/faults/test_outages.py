"""Dependency outages seen by the API: a database link that stops moving bytes, a frozen Redis.

The database sits behind a loopback TCP proxy the test controls (it stops forwarding without closing
anything, like a cut link); Redis is a private redis-server the test freezes with SIGSTOP. Submits must
answer within 15 s (503 with Retry-After and a JSON error when the job could not be accepted), /readyz
must name the dependency within a few seconds, and every accepted job must finish once the link heals.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from questboard.testing import RedisServer, questboard_env, wait_for, wait_worker_ready, worker_process
from shared import defaults
from shared.accounts import Accounts
from shared.publisher import SocketIOPublisher
from shared.settings import Settings
from tests.faults.proxy import LinkProxy

ANSWER_BOUND_S = 15.0
READYZ_BOUND_S = 6.0


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def _known_broker(url: str) -> None:
    redis.Redis.from_url(url).set("questboard:broker-epoch", f"test:{time.time() - 3600}")


class Installation:
    """A private Redis, one worker (straight to the database) and the web app on ``web_db_url``."""

    def __init__(
        self, tmp_path: Path, db_url: str, web_db_url: str, concurrency: int = 2, *worker_args: str
    ) -> None:
        from web import create_app

        self.redis = RedisServer(tmp_path / "redis", appendonly=False).start()
        _known_broker(self.redis.url)
        env = questboard_env(self.redis.url, db_url, tmp_path / "i")
        self.worker = worker_process(env, tmp_path, concurrency=concurrency, extra_args=list(worker_args))
        self.worker.start()
        wait_worker_ready(self.worker, self.redis.url)
        person = Accounts(db_url).ensure_user("outage@example.com")
        self.headers = {"Authorization": f"Bearer {Accounts(db_url).issue_api_token(person)}"}
        settings = Settings(
            redis_url=self.redis.url, database_url=web_db_url, instance_dir=tmp_path / "i", secret_key="x"
        )
        self.client = create_app(settings, TESTING=True).test_client()
        self.accepted: list[str] = []

    def submit(self, **params: Any) -> Any:
        body = {"type": "diagnostics.probe", "params": params}
        resp = self.client.post("/api/jobs", json=body, headers=self.headers)
        if resp.status_code == 202:
            self.accepted.append(resp.get_json()["id"])
        return resp

    def job(self, job_id: str) -> dict[str, Any]:
        return self.client.get(f"/api/jobs/{job_id}", headers=self.headers).get_json()

    def all_accepted_succeeded(self) -> bool:
        return all(
            self.client.get(f"/api/jobs/{job_id}", headers=self.headers).get_json()["status"] == "succeeded"
            for job_id in self.accepted
        )

    def close(self) -> None:
        self.worker.stop(timeout_s=10)
        self.redis.stop()


def _assert_unavailable(resp: Any, took: float) -> None:
    assert took < ANSWER_BOUND_S, f"the submit took {took:.1f} s"
    assert resp.status_code == 503, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert int(resp.headers["Retry-After"]) > 0
    assert resp.get_json()["error"]["code"] == "unavailable"


def test_a_cut_database_link_answers_503_and_loses_nothing(tmp_path: Path, postgres_url: str):
    proxy = LinkProxy("127.0.0.1", 5432)
    web_db_url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert web_db_url != postgres_url
    stack = Installation(tmp_path, postgres_url, web_db_url)
    try:
        assert stack.submit().status_code == 202
        wait_for(lambda: stack.client.get("/readyz").status_code == 200, 20, what="ready before the cut")
        proxy.cut()
        cut_at = time.monotonic()
        resp, took = _timed(stack.submit)
        print(f"\ndatabase cut: submit answered {resp.status_code} after {took:.2f} s")
        _assert_unavailable(resp, took)
        ready, took = _timed(lambda: stack.client.get("/readyz"))
        print(f"database cut: /readyz answered {ready.status_code} after {took:.2f} s: {ready.get_json()}")
        assert took < READYZ_BOUND_S and ready.status_code == 503 and "database" in ready.get_json()["failed"]
        proxy.heal()
        healed_at = time.monotonic()
        wait_for(
            lambda: stack.submit().status_code == 202, ANSWER_BOUND_S, 0.2, what="submits accepted again"
        )
        print(f"database link healed: submits accepted again after {time.monotonic() - healed_at:.2f} s")
        wait_for(lambda: stack.client.get("/readyz").status_code == 200, 20, what="/readyz 200 again")
        wait_for(stack.all_accepted_succeeded, 30, what="every accepted job to succeed")
        print(
            f"database cut: {len(stack.accepted)} accepted, all succeeded, {time.monotonic() - cut_at:.1f} s"
        )
        # A restart of the database drops every connection: the next submits still answer, none is lost.
        proxy.drop_all()
        resp, took = _timed(stack.submit)
        print(f"database restart: submit answered {resp.status_code} after {took:.2f} s")
        assert took < ANSWER_BOUND_S and resp.status_code in (202, 503)
        wait_for(
            lambda: stack.submit().status_code == 202, ANSWER_BOUND_S, 0.2, what="accepted after restart"
        )
        wait_for(stack.all_accepted_succeeded, 30, what="every accepted job to succeed")
    finally:
        proxy.heal()
        stack.close()
        proxy.close()


def test_a_frozen_redis_never_hangs_a_submit_and_loses_nothing(tmp_path: Path, sqlite_url: str):
    stack = Installation(tmp_path, sqlite_url, sqlite_url)
    try:
        assert stack.submit().status_code == 202
        wait_for(lambda: stack.client.get("/readyz").status_code == 200, 20, what="ready before the freeze")
        stack.redis.process.send_signal(signal.SIGSTOP)
        try:
            resp, took = _timed(stack.submit)
            print(f"\nredis frozen: submit answered {resp.status_code} after {took:.2f} s")
            assert took < ANSWER_BOUND_S and resp.status_code in (202, 503), resp.status_code
            if resp.status_code == 503:
                _assert_unavailable(resp, took)
            ready, took = _timed(lambda: stack.client.get("/readyz"))
            print(f"redis frozen: /readyz answered {ready.status_code} after {took:.2f} s")
            assert (
                took < READYZ_BOUND_S and ready.status_code == 503 and "redis" in ready.get_json()["failed"]
            )
        finally:
            stack.redis.process.send_signal(signal.SIGCONT)
        wait_for(lambda: stack.client.get("/readyz").status_code == 200, 30, what="/readyz 200 again")
        assert stack.submit().status_code == 202
        wait_for(stack.all_accepted_succeeded, 40, what="every accepted job to succeed")
        print(f"redis frozen: {len(stack.accepted)} accepted, all succeeded")
    finally:
        stack.close()


def test_a_frozen_redis_costs_the_publish_timeout_once_not_once_per_update(tmp_path: Path):
    """A worker's committer publishes each owner's updates of a batch in turn, and the web each submit's:
    with Redis frozen every PUBLISH waited out its timeouts (2 x 1.5 s), so 8 owners' updates held the
    committer — and every job thread of the process — for 24 s. After one failed publish, publishing pauses
    briefly (the updates are notifications: the database has the state), then resumes by itself."""
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    try:
        publisher = SocketIOPublisher(server.url)
        publisher.job_update({"id": "before"}, 1)  # connected
        done = threading.Event()

        def burst() -> None:
            for owner in range(8):
                publisher.job_updates([{"id": f"job-{owner}"}], owner)
            done.set()

        server.process.send_signal(signal.SIGSTOP)
        try:
            threading.Thread(target=burst, daemon=True).start()
            wait_for(done.is_set, 8, what="8 owners' updates to be through with Redis frozen")
        finally:
            server.process.send_signal(signal.SIGCONT)
        feed = redis.Redis.from_url(server.url).pubsub()
        feed.subscribe(defaults.SOCKETIO_CHANNEL)

        def delivered() -> bool:
            publisher.job_update({"id": "after-the-thaw"}, 1)
            while (message := feed.get_message(timeout=0.2)) is not None:
                if message["type"] == "message" and b"after-the-thaw" in message["data"]:
                    return True
            return False

        wait_for(delivered, 20, interval_s=0.2, what="publishing to resume after the thaw")
        feed.close()
    finally:
        server.kill()
