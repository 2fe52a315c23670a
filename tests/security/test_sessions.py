"""Access ends when it should: sign-out, expiry, ``questboard users revoke`` and ``users tokens``.

Sign-out and revocation are checked against the real web server (gunicorn + Socket.IO), with a browser
session made by a real magic link and replayed afterwards from a copy of its cookie, as an attacker who
copied it would. Expiry is tested by moving the session row's times in the database, not by waiting.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import socketio
from sqlalchemy import select, update

from questboard.testing import questboard_env, wait_for
from shared import defaults
from shared.db import get_sessionmaker
from shared.models import ApiToken, UserSession, utcnow
from shared.settings import Settings
from tests.security.support import log_in

QUESTBOARD = str(Path(sys.executable).parent / "questboard")
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def settings(redis_url, database_url, instance_dir) -> Settings:
    """Every test here runs on SQLite and on PostgreSQL (the web server and the CLI too)."""
    return Settings(
        redis_url=redis_url, database_url=database_url, instance_dir=instance_dir, secret_key="test-secret"
    )


def browser_session(base: str, accounts, person) -> requests.Session:
    browser = requests.Session()
    link = accounts.create_magic_link(person.user, base)
    assert browser.get(link, timeout=10, allow_redirects=False).status_code == 302
    return browser


def with_cookie(cookie: str) -> requests.Session:
    """A new client that has nothing but a copy of a session cookie."""
    replay = requests.Session()
    replay.headers["Cookie"] = f"session={cookie}"
    return replay


def page_status(client: requests.Session, base: str) -> tuple[int, str]:
    response = client.get(base + "/", timeout=10, allow_redirects=False)
    return response.status_code, response.headers.get("Location", "")


def socket_connects(base: str, *, cookie: str | None = None, token: str | None = None) -> bool:
    sio = socketio.Client(reconnection=False)
    try:
        sio.connect(
            base,
            namespaces=["/jobs"],
            auth={"token": token} if token else None,
            headers={"Cookie": f"session={cookie}"} if cookie else {},
            transports=["websocket"],
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError:
        return False
    sio.disconnect()
    return True


def questboard(args: list[str], settings: Settings) -> subprocess.CompletedProcess[str]:
    env = questboard_env(settings.redis_url, settings.resolved_database_url, settings.instance_dir)
    return subprocess.run([QUESTBOARD, *args], env=env, capture_output=True, text=True, timeout=60)


def test_sign_out_ends_the_session_on_the_server(live_server, accounts, alice):
    browser = browser_session(live_server, accounts, alice)
    cookie = browser.cookies["session"]
    other = browser_session(live_server, accounts, alice)  # the same person in another browser
    assert page_status(with_cookie(cookie), live_server)[0] == 200
    assert socket_connects(live_server, cookie=cookie)

    html = browser.get(live_server + "/", timeout=10).text
    csrf = CSRF_FIELD.search(html).group(1)
    out = browser.post(live_server + "/logout", data={"csrf_token": csrf}, timeout=10, allow_redirects=False)
    assert out.status_code == 302 and out.headers["Location"].endswith("/login")

    status, location = page_status(with_cookie(cookie), live_server)  # the copy of the old cookie
    assert status == 302 and "/login" in location
    assert not socket_connects(live_server, cookie=cookie)
    # Only that session ended: the other browser is still signed in.
    assert page_status(other, live_server)[0] == 200
    assert socket_connects(live_server, cookie=other.cookies["session"])


def test_users_revoke_ends_every_session_and_token(live_server, accounts, settings, alice, bob):
    cookies = [browser_session(live_server, accounts, alice).cookies["session"] for _ in range(2)]
    second_token = accounts.issue_api_token(alice.user)
    bob_cookie = browser_session(live_server, accounts, bob).cookies["session"]
    for token in (alice.token, second_token):
        api = requests.get(
            live_server + "/api/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert api.status_code == 200

    result = questboard(["users", "revoke", "Alice@Example.com"], settings)
    assert result.returncode == 0, result.stderr
    assert "2 session(s)" in result.stdout and "2 API token(s)" in result.stdout

    for token in (alice.token, second_token):
        api = requests.get(
            live_server + "/api/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert api.status_code == 401
        assert not socket_connects(live_server, token=token)
    for cookie in cookies:
        status, location = page_status(with_cookie(cookie), live_server)
        assert status == 302 and "/login" in location
        assert not socket_connects(live_server, cookie=cookie)
    # Bob is untouched.
    assert page_status(with_cookie(bob_cookie), live_server)[0] == 200
    assert socket_connects(live_server, token=bob.token)

    unknown = questboard(["users", "revoke", "ghost@example.com"], settings)
    assert unknown.returncode != 0 and "no user" in unknown.stderr


def test_users_tokens_lists_by_prefix_and_revokes_one(app, accounts, settings, alice):
    second = accounts.issue_api_token(alice.user)
    api = app.test_client()
    assert api.get("/api/jobs", headers=alice.headers).status_code == 200  # alice.token used, second not

    listed = questboard(["users", "tokens", alice.user.email], settings)
    assert listed.returncode == 0, listed.stderr
    assert alice.token not in listed.stdout and second not in listed.stdout  # never the whole token
    lines = listed.stdout.strip().splitlines()[1:]
    prefixes = [line.split()[0] for line in lines]
    assert prefixes == [alice.token[:11], second[:11]]
    assert "never" not in lines[0] and lines[1].endswith("never")  # last used

    ended = questboard(["users", "tokens", alice.user.email, "--revoke", second[:11]], settings)
    assert ended.returncode == 0, ended.stderr
    assert api.get("/api/jobs", headers={"Authorization": f"Bearer {second}"}).status_code == 401
    assert api.get("/api/jobs", headers=alice.headers).status_code == 200

    for args in (
        ["users", "tokens", alice.user.email, "--revoke", "qb_nosuchpre"],
        ["users", "tokens", alice.user.email, "--revoke", second[:11]],  # already ended
        ["users", "tokens", "ghost@example.com"],
        ["users", "tokens", "ghost@example.com", "--revoke", alice.token[:11]],
    ):
        refused = questboard(args, settings)
        assert refused.returncode != 0 and refused.stderr.strip(), args
    assert api.get("/api/jobs", headers=alice.headers).status_code == 200


def test_token_last_use_is_written_at_most_once_a_minute(app, settings, alice):
    api = app.test_client()

    def last_used():
        with get_sessionmaker(settings.resolved_database_url)() as db:
            return db.scalar(select(ApiToken.last_used_at).where(ApiToken.user_id == alice.user.id))

    assert last_used() is None
    api.get("/api/jobs", headers=alice.headers)
    first = last_used()
    assert first is not None
    for _ in range(3):
        api.get("/api/jobs", headers=alice.headers)
    assert last_used() == first
    with get_sessionmaker(settings.resolved_database_url)() as db:  # a minute later
        earlier = first - timedelta(seconds=defaults.TOKEN_TOUCH_INTERVAL_S)
        db.execute(update(ApiToken).where(ApiToken.user_id == alice.user.id).values(last_used_at=earlier))
        db.commit()
    api.get("/api/jobs", headers=alice.headers)
    assert last_used() > first


# ----- the session row and the cookie ---------------------------------------------------------------


def cookie_payload(client) -> dict:
    """What the signed session cookie carries (Flask's format: optional '.', base64 JSON, maybe zlib)."""
    value = client.get_cookie("session").value
    compressed = value.startswith(".")
    data = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return json.loads(zlib.decompress(raw) if compressed else raw)


def test_the_cookie_carries_only_a_random_session_id(app, accounts, settings, alice):
    client = log_in(app.test_client(), accounts, alice.user)
    payload = cookie_payload(client)
    assert set(payload) <= {"sid", "csrf_token", "_permanent"} and "user_id" not in payload
    with get_sessionmaker(settings.resolved_database_url)() as db:
        [row] = db.scalars(select(UserSession).where(UserSession.user_id == alice.user.id)).all()
    assert payload["sid"] not in row.id_hash and len(row.id_hash) == 64  # stored hashed
    assert row.revoked_at is None
    lifetime = row.expires_at - row.created_at
    assert abs(lifetime - timedelta(seconds=defaults.SESSION_LIFETIME_S)) < timedelta(seconds=2)


@pytest.mark.parametrize("how", ["lifetime", "idle"])
def test_sessions_expire(app, accounts, settings, alice, how):
    client = log_in(app.test_client(), accounts, alice.user)
    assert client.get("/").status_code == 200
    now = utcnow()
    with get_sessionmaker(settings.resolved_database_url)() as db:
        if how == "lifetime":  # signed in 14 days ago, busy ever since
            values = {"expires_at": now - timedelta(seconds=1)}
        else:  # not seen for longer than the idle timeout
            values = {"last_seen_at": now - timedelta(seconds=defaults.SESSION_IDLE_TIMEOUT_S + 1)}
        db.execute(update(UserSession).where(UserSession.user_id == alice.user.id).values(**values))
        db.commit()
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_an_active_session_is_kept_alive_with_few_writes(app, accounts, settings, alice):
    client = log_in(app.test_client(), accounts, alice.user)

    def last_seen():
        with get_sessionmaker(settings.resolved_database_url)() as db:
            return db.scalar(select(UserSession.last_seen_at).where(UserSession.user_id == alice.user.id))

    first = last_seen()
    for _ in range(3):
        assert client.get("/").status_code == 200
    assert last_seen() == first  # no write per request
    idle_almost = utcnow() - timedelta(seconds=defaults.SESSION_IDLE_TIMEOUT_S - 30)
    with get_sessionmaker(settings.resolved_database_url)() as db:
        db.execute(update(UserSession).values(last_seen_at=idle_almost))
        db.commit()
    assert client.get("/").status_code == 200  # still in time: this request renews it
    assert last_seen() > idle_almost + timedelta(seconds=60)


def test_a_connection_made_before_sign_out_can_subscribe_to_nothing_after(live_server, accounts, alice):
    browser = browser_session(live_server, accounts, alice)
    job = requests.post(
        live_server + "/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers, timeout=10
    ).json()["id"]
    errors, updates = [], []
    sio = socketio.Client(reconnection=False)
    sio.on("error", errors.append, namespace="/jobs")
    sio.on("job:update", updates.append, namespace="/jobs")
    sio.connect(
        live_server,
        namespaces=["/jobs"],
        headers={"Cookie": f"session={browser.cookies['session']}"},
        transports=["websocket"],
        wait_timeout=10,
    )
    try:
        sio.call("subscribe", {"job_id": job}, namespace="/jobs", timeout=10)
        assert [u["id"] for u in updates] == [job]  # while signed in it works
        csrf = CSRF_FIELD.search(browser.get(live_server + "/", timeout=10).text).group(1)
        browser.post(live_server + "/logout", data={"csrf_token": csrf}, timeout=10)
        # Sign-out drops the connection itself (tests/security/test_live_revocation.py: its rooms too).
        wait_for(lambda: errors and not sio.connected, 10, what="the server to drop the connection")
        assert errors == [{"code": "unauthorized"}] and len(updates) == 1
    finally:
        if sio.connected:
            sio.disconnect()
