"""A live feed ends with its access: a /jobs connection that already joined rooms is disconnected.

An attacker with a copied cookie or token connects, subscribes to a running job and watches "mine",
then the victim signs out (or an operator runs ``questboard users revoke`` / ``users tokens --revoke``).
Against the real web server and a real worker, on SQLite and PostgreSQL: within the re-check interval
the server drops that connection and nothing more reaches it, while an admin's connection, still valid,
keeps receiving the same job's progress.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests
import socketio

from questboard.testing import wait_for
from shared import defaults
from shared.settings import Settings
from tests.security.test_sessions import CSRF_FIELD, browser_session, questboard

MARGIN_S = 5.0  # the check's query and the disconnect on a busy machine
SIGN_OUT_DROP_S = 1.5  # sign-out sends the disconnect before its response: only the delivery is left


@pytest.fixture
def settings(redis_url, database_url, instance_dir) -> Settings:
    """The batch check is a database query: every test here runs on SQLite and on PostgreSQL."""
    return Settings(
        redis_url=redis_url, database_url=database_url, instance_dir=instance_dir, secret_key="test-secret"
    )


class Feed:
    """A python-socketio client of /jobs recording every job:update and error, and when it was dropped."""

    def __init__(self, base: str, *, token: str | None = None, cookie: str | None = None) -> None:
        self.lock = threading.Lock()
        self.updates: list[dict] = []
        self.errors: list[dict] = []
        self.dropped_at: float | None = None
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("job:update", self._record(self.updates), namespace="/jobs")
        self.sio.on("error", self._record(self.errors), namespace="/jobs")
        self.sio.on("disconnect", self._dropped, namespace="/jobs")
        self.sio.connect(
            base,
            namespaces=["/jobs"],
            auth={"token": token} if token else None,
            headers={"Cookie": f"session={cookie}"} if cookie else {},
            transports=["websocket"],
            wait_timeout=10,
        )

    def _record(self, into: list[dict]):
        def append(data: dict) -> None:
            with self.lock:
                into.append(data)

        return append

    def _dropped(self, *reason: object) -> None:
        self.dropped_at = time.monotonic()

    def call(self, event: str, data: dict) -> None:
        self.sio.call(event, data, namespace="/jobs", timeout=10)

    def progress_of(self, job_id: str) -> list[int]:
        with self.lock:
            return [u["progress"] for u in self.updates if u["id"] == job_id]

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


def sign_out(base: str, browser: requests.Session) -> None:
    csrf = CSRF_FIELD.search(browser.get(base + "/", timeout=10).text).group(1)
    out = browser.post(base + "/logout", data={"csrf_token": csrf}, timeout=10, allow_redirects=False)
    assert out.status_code == 302


@pytest.mark.parametrize("how", ["sign-out", "users revoke", "token revoke"])
def test_a_joined_feed_ends_when_its_access_ends(how, live_server, worker, accounts, settings, alice, admin):
    job_id = requests.post(
        live_server + "/api/jobs",
        json={"type": "diagnostics.probe", "params": {"steps": 600, "step_ms": 100}},
        headers=alice.headers,
        timeout=10,
    ).json()["id"]
    feeds: list[Feed] = []
    try:
        if how == "sign-out":
            browser = browser_session(live_server, accounts, alice)
            stolen = Feed(live_server, cookie=browser.cookies["session"])
        else:
            token = accounts.issue_api_token(alice.user)  # alice's second token, the one copied
            stolen = Feed(live_server, token=token)
        control = Feed(live_server, token=admin.token)  # an operator's feed, still valid throughout
        feeds += [stolen, control]
        stolen.call("subscribe", {"job_id": job_id})
        stolen.call("watch", {"scope": "mine"})
        control.call("subscribe", {"job_id": job_id})
        wait_for(lambda: any(0 < p < 100 for p in stolen.progress_of(job_id)), 30, what="a live feed")

        if how == "sign-out":
            sign_out(live_server, browser)
        elif how == "users revoke":
            result = questboard(["users", "revoke", alice.user.email], settings)
            assert result.returncode == 0, result.stderr
        else:
            result = questboard(["users", "tokens", alice.user.email, "--revoke", token[:11]], settings)
            assert result.returncode == 0, result.stderr
        ended_at = time.monotonic()

        wait_for(
            lambda: stolen.dropped_at is not None,
            defaults.LIVE_RECHECK_INTERVAL_S + MARGIN_S,
            what="the server to drop the connection",
        )
        assert not stolen.sio.connected and stolen.errors == [{"code": "unauthorized"}]
        assert stolen.dropped_at - ended_at < defaults.LIVE_RECHECK_INTERVAL_S + MARGIN_S
        if how == "sign-out":  # this web process signed it out: it dropped the feed at once
            assert stolen.dropped_at - ended_at < SIGN_OUT_DROP_S, stolen.dropped_at - ended_at
        seen_by_stolen = len(stolen.progress_of(job_id))
        seen_by_control = len(control.progress_of(job_id))
        # The job goes on, and the valid feed keeps getting it; the dropped one gets nothing more.
        wait_for(
            lambda: len(control.progress_of(job_id)) >= seen_by_control + 5, 30, what="the job's progress"
        )
        assert control.progress_of(job_id)[-1] < 100  # still running: there was more to send
        assert len(stolen.progress_of(job_id)) == seen_by_stolen
    finally:
        for feed in feeds:
            feed.close()
        requests.post(f"{live_server}/api/jobs/{job_id}/cancel", headers=admin.headers, timeout=10)
