"""Secrets at rest and in logs.

API tokens are stored as SHA-256 hashes only. Then a whole working day in miniature runs against real
processes (the production web command line with its access log, a Celery worker) and the in-process app:
sign-in through the form, the link from a real SMTP server that wants a password, API calls with bearer
tokens, a signed webhook, Socket.IO with a token, while Redis itself wants a password. No token, link,
password, secret or session cookie may appear in any log line any of them wrote.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
import socketio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import text

from questboard.cli import web_argv
from questboard.testing import ManagedProcess, free_port, http_ok, wait_for
from shared.db import get_sessionmaker
from shared.flagship.webhooks import sign
from shared.logging_setup import JsonFormatter
from tests.security.support import WEBHOOK_SECRET, WEBHOOK_SOURCE, csrf_from

# Our SMTP server takes a password over plain SMTP on the loopback interface only.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

REDIS_PASSWORD = "redis-Pa55-e1c9d7"
SMTP_USER, SMTP_PASSWORD = "mailer", "smtp-Pa55-4b8f20"
SECRET_KEY = "flask-secret-key-a7c41e99"
# The test's own clients and SMTP server log what they send; only the app's lines count.
TEST_SIDE_LOGGERS = ("mail.log", "urllib3", "socketio.client", "engineio.client", "websocket")
LINK = re.compile(r"https?://\S+/login/([A-Za-z0-9_-]+)")


# ----- a Redis and an SMTP server that want passwords --------------------------------------------------


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory) -> Iterator[int]:
    port, folder = free_port(), tmp_path_factory.mktemp("locked-redis")
    argv = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--requirepass", REDIS_PASSWORD, "--dir", str(folder)]
    server = ManagedProcess(f"redis-{port}", argv, {}, folder)
    server.start()
    client = redis.Redis(port=port, password=REDIS_PASSWORD)
    wait_for(client.ping, 10, what="redis-server with a password")
    yield port
    server.stop(timeout_s=10)


@pytest.fixture
def redis_url(locked_redis: int) -> str:
    redis.Redis(port=locked_redis, password=REDIS_PASSWORD).flushall()
    return f"redis://:{REDIS_PASSWORD}@127.0.0.1:{locked_redis}/0"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(envelope.content.decode("utf-8", errors="replace"))
        return "250 Message accepted"


def _check_password(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, str]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_check_password,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    yield inbox, f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{port}"
    controller.stop()


@pytest.fixture
def settings(settings, smtp):
    return settings.model_copy(update={"smtp_url": smtp[1], "secret_key": SECRET_KEY})


@pytest.fixture
def env(env, smtp):
    return {**env, "SMTP_URL": smtp[1], "SECRET_KEY": SECRET_KEY}


@pytest.fixture
def web(env, tmp_path) -> Iterator[str]:
    """``questboard web`` as production runs it (gunicorn, JSON logs, access log on)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = ManagedProcess(
        "questboard-web", web_argv("127.0.0.1", port), {**env, "QUESTBOARD_BASE_URL": base}, tmp_path
    )
    proc.start()
    try:
        wait_for(lambda: http_ok(base + "/healthz"), 30, what="questboard web")
        yield base
    finally:
        proc.stop(timeout_s=10)


# ----- at rest -----------------------------------------------------------------------------------------


def test_api_tokens_are_stored_as_sha256_only(settings, accounts, alice, admin):
    tokens = [alice.token, admin.token, accounts.issue_api_token(alice.user)]
    with get_sessionmaker(settings.resolved_database_url)() as db:
        hashes = set(db.scalars(text("SELECT token_hash FROM api_tokens")))
    assert hashes == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    database = Path(settings.resolved_database_url.removeprefix("sqlite:///")).read_bytes()
    assert not any(t.encode() in database for t in tokens)  # in no column of any table


# ----- in logs -----------------------------------------------------------------------------------------


def _signed_delivery(body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    return {
        "X-Questboard-Timestamp": timestamp,
        "X-Questboard-Signature": sign(WEBHOOK_SECRET, timestamp, body),
        "Content-Type": "application/json",
    }


def _finished(base: str, person, job_id: str) -> bool:
    job = requests.get(f"{base}/api/jobs/{job_id}", headers=person.headers, timeout=5).json()
    return job["status"] in ("succeeded", "failed")


def _day_on_the_live_server(base: str, alice, admin, inbox: Inbox) -> list[str]:
    """Everything a person and a sender do, over HTTP and Socket.IO; returns the secrets it saw."""
    seen = []
    browser = requests.Session()
    page = browser.get(f"{base}/login", timeout=5).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert browser.post(f"{base}/login", data={"email": alice.user.email, "csrf_token": csrf}, timeout=5).ok
    wait_for(lambda: inbox.messages, 30, what="the login mail through the password-protected SMTP server")
    link = LINK.search(inbox.messages[-1]).group(0)
    seen.append(LINK.search(link).group(1))
    opened = browser.get(link, timeout=5, allow_redirects=False)
    assert opened.status_code == 302 and browser.get(f"{base}/", timeout=5).ok
    seen.append(browser.cookies["session"])
    assert requests.get(link, timeout=5).status_code == 400  # spent: the 400 is logged with its path

    submitted = requests.post(
        f"{base}/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers, timeout=5
    )
    job_id = submitted.json()["id"]
    requests.get(
        f"{base}/api/jobs", params={"token": alice.token, "limit": 5}, timeout=5
    )  # a careless client
    body = json.dumps({"id": "delivery-1", "event": "ping"}).encode()
    headers = _signed_delivery(body)
    seen.append(headers["X-Questboard-Signature"].removeprefix("sha256="))
    hook = requests.post(f"{base}/webhooks/{WEBHOOK_SOURCE}", data=body, headers=headers, timeout=5)
    assert hook.status_code == 202, hook.text

    sio = socketio.Client(reconnection=False)
    updates: list[dict] = []
    sio.on("job:update", updates.append, namespace="/jobs")
    sio.connect(
        base, namespaces=["/jobs"], auth={"token": alice.token}, transports=["websocket"], wait_timeout=10
    )
    sio.emit("subscribe", {"job_id": job_id}, namespace="/jobs")
    wait_for(lambda: updates, 10, what="a job:update")
    sio.disconnect()
    wait_for(lambda: _finished(base, alice, job_id), 30, what="the probe job")
    wait_for(lambda: _finished(base, admin, hook.json()["job_id"]), 30, what="the webhook job (the system's)")
    return seen


def _day_in_process(app, alice, inbox: Inbox) -> list[str]:
    client = app.test_client()
    assert (
        client.post(
            "/login", data={"email": alice.user.email, "csrf_token": csrf_from(client, "/login")}
        ).status_code
        == 200
    )

    # The second sign-in mail as its reader gets it: once mail.deliver hands it to SMTP, the outbox keeps
    # only a note in the link's place (no table holds a usable link), so it is read from the inbox.
    second = wait_for(lambda: inbox.messages[1] if len(inbox.messages) >= 2 else None, 30, what="mail 2")
    token = LINK.search(second).group(1)
    assert client.get(f"/login/{token}").status_code == 302
    assert client.get(f"/login/{token}").status_code == 400
    assert client.get("/api/jobs", headers=alice.headers).status_code == 200
    assert client.get("/api/jobs", headers={"Authorization": f"Bearer {alice.token}x"}).status_code == 401
    body = b'{"id": "delivery-2", "event": "ping"}'
    headers = _signed_delivery(body)
    assert client.post(f"/webhooks/{WEBHOOK_SOURCE}", data=body, headers=headers).status_code == 202
    return [token, headers["X-Questboard-Signature"].removeprefix("sha256=")]


def test_no_secret_reaches_any_log(web, start_worker, app, alice, admin, settings, smtp, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    worker = start_worker(concurrency=1)
    inbox, smtp_url = smtp
    secrets = [alice.token, admin.token, REDIS_PASSWORD, SMTP_PASSWORD, WEBHOOK_SECRET, SECRET_KEY]
    secrets += _day_on_the_live_server(web, alice, admin, inbox)
    secrets += _day_in_process(app, alice, inbox)
    wait_for(lambda: len(inbox.messages) >= 2, 30, what="the second login mail")

    process_logs = {path.name: path.read_text(errors="replace") for path in tmp_path.glob("*.log")}
    records = [r for r in caplog.records if not r.name.startswith(TEST_SIDE_LOGGERS)]
    in_process = "\n".join(JsonFormatter().format(record) for record in records)
    logs = {**process_logs, "in-process": in_process}
    # Not vacuous: the logs saw the requests and the jobs the secrets travelled with.
    assert '"path": "/login/***"' in process_logs["questboard-web.log"]
    assert "/webhooks/github" in process_logs["questboard-web.log"]
    assert '"query": "token=***&limit=5"' in process_logs["questboard-web.log"]
    assert "mail.deliver" in worker.output() and "webhook.process" in worker.output()
    leaks = [(name, secret) for name, text_ in logs.items() for secret in secrets if secret in text_]
    assert not leaks, f"secrets in logs: {leaks}"
    raw = [r for r in records if any(s in r.getMessage() for s in secrets)]
    assert not raw, [r.getMessage() for r in raw]  # not even before redaction
