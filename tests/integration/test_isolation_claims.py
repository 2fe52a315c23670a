"""Another user's jobs never block yours (contract §9), with real workers on SQLite and PostgreSQL:
a pre-claimed outbox id or webhook delivery, and the per-user cap on waiting jobs (batch imports too)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from questboard.testing import free_port, wait_for
from shared.db import get_sessionmaker
from shared.errors import LimitReached
from shared.flagship.webhooks import sign
from shared.models import Job, OutboxMail
from tests.conftest import Person
from tests.integration.helpers_app import csrf_token, wait_finished

SECRET = "hook-secret"
CAP = 5


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode("utf-8", errors="replace")))
        return "250 Message accepted"


@pytest.fixture
def smtp_inbox() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url


@pytest.fixture
def settings(settings, smtp_inbox):
    return settings.model_copy(
        update={
            "smtp_url": f"smtp://127.0.0.1:{smtp_inbox[1]}",
            "webhook_secrets": f"shop:{SECRET}",
            "user_queued_limit": CAP,
        }
    )


@pytest.fixture
def env(env, smtp_inbox):
    return {
        **env,
        "SMTP_URL": f"smtp://127.0.0.1:{smtp_inbox[1]}",
        "QUESTBOARD_WEBHOOK_SECRETS": f"shop:{SECRET}",
        "QUESTBOARD_USER_QUEUED_LIMIT": str(CAP),
    }


def next_outbox_id(settings) -> int:
    with get_sessionmaker(settings.resolved_database_url)() as db:
        return (db.scalar(select(func.max(OutboxMail.id))) or 0) + 1


def test_a_pre_claimed_outbox_id_cannot_stop_another_users_sign_in_mail(
    client, alice, bob, admin, settings, smtp_inbox, worker
):
    inbox, _ = smtp_inbox
    outbox_id = next_outbox_id(settings)
    soon = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    for run_at in ("9999-01-01T00:00:00Z", soon):
        resp = client.post(
            "/api/jobs",
            json={"type": "mail.deliver", "params": {"outbox_id": outbox_id}, "run_at": run_at},
            headers=bob.headers,
        )
        assert resp.status_code == 422 and resp.get_json()["error"]["fields"] == {"type": "unknown job type"}
    # Even a job that does hold the key (an admin's, scheduled far ahead) belongs to its owner only.
    held = client.post(
        "/api/jobs",
        json={"type": "mail.deliver", "params": {"outbox_id": outbox_id}, "run_at": soon},
        headers=admin.headers,
    )
    assert held.status_code == 202 and held.get_json()["status"] == "scheduled"

    resp = client.post("/login", data={"email": alice.user.email, "csrf_token": csrf_token(client, "/login")})
    assert resp.status_code == 200
    mail = wait_for(lambda: inbox.messages, 20, what="Alice's sign-in mail at the SMTP server")[0]
    assert mail[0] == [alice.user.email] and "Subject: Your Questboard sign-in link" in mail[1]
    with get_sessionmaker(settings.resolved_database_url)() as db:
        sent = db.get(OutboxMail, outbox_id)
        assert sent is not None and sent.to_addr == alice.user.email
        delivering = db.scalars(
            select(Job).where(Job.type == "mail.deliver", Job.id != held.get_json()["id"])
        ).one()
    assert wait_finished(client, admin, delivering.id)["status"] == "succeeded"


def post_webhook(client, body: bytes):
    stamp = str(int(time.time()))
    return client.post(
        "/webhooks/shop",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Questboard-Timestamp": stamp,
            "X-Questboard-Signature": sign(SECRET, stamp, body),
        },
    )


def test_a_pre_claimed_webhook_delivery_cannot_make_a_signed_webhook_409(client, bob, admin, worker):
    resp = client.post(
        "/api/jobs", json={"type": "webhook.process", "params": {"delivery": 1}}, headers=bob.headers
    )
    assert resp.status_code == 422 and resp.get_json()["error"]["fields"] == {"type": "unknown job type"}
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    held = client.post(
        "/api/jobs",
        json={"type": "webhook.process", "params": {"delivery": 1}, "run_at": later},
        headers=admin.headers,
    )
    assert held.status_code == 202

    first = post_webhook(client, json.dumps({"id": "evt_1", "event": "ping"}).encode())
    assert first.status_code == 202, first.get_json()
    receipt = first.get_json()
    assert receipt["job_id"] != held.get_json()["id"]
    done = wait_finished(client, admin, receipt["job_id"])
    assert done["status"] == "succeeded" and done["result"]["action"] == "pong"


def test_waiting_jobs_are_capped_per_user_children_included(app, client, accounts, alice, bob, admin):
    # No worker: everything submitted waits.
    jobs = app.extensions["questboard"].jobs
    for _ in range(CAP):
        assert (
            client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers).status_code
            == 202
        )
    over = client.post(
        "/api/jobs", json={"type": "diagnostics.probe", "delay_seconds": 60}, headers=alice.headers
    )
    assert over.status_code == 429 and int(over.headers["Retry-After"]) > 0
    message = over.get_json()["error"]["message"]
    assert f"the limit is {CAP} waiting jobs" in message and "QUESTBOARD_USER_QUEUED_LIMIT" in message
    # Another user is not affected by Alice's backlog.
    assert (
        client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=bob.headers).status_code == 202
    )

    # Children of a fan-out do not count against the active-job limit, but they do count as waiting work.
    parent = client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=admin.headers).get_json()
    carol = Person(accounts, "carol@example.com")
    for n in range(CAP):
        jobs.submit(
            carol.user, "diagnostics.probe", {}, parent_id=parent["id"], idempotency_key=f"c{n}", queue="low"
        )
    with pytest.raises(LimitReached, match=f"limit is {CAP} waiting jobs"):
        jobs.submit(carol.user, "diagnostics.probe", {}, parent_id=parent["id"], idempotency_key="c-over")
    assert (
        client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=carol.headers).status_code == 429
    )


def csv_of(rows: int) -> bytes:
    lines = ["name,race,class,level"] + [f"Hero {n},Elf,Ranger,{n % 20 + 1}" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def test_a_batch_import_that_cannot_fit_under_the_cap_is_refused_up_front(client, alice, settings, worker):
    too_big = client.post(
        "/api/imports", data=csv_of(CAP), headers={**alice.headers, "Content-Type": "text/csv"}
    )
    assert too_big.status_code == 429
    message = too_big.get_json()["error"]["message"]
    assert f"this adds {CAP + 1} jobs" in message and f"the limit is {CAP} waiting jobs" in message
    assert client.get("/api/jobs", headers=alice.headers).get_json()["jobs"] == []

    fits = client.post("/api/imports", data=csv_of(3), headers={**alice.headers, "Content-Type": "text/csv"})
    assert fits.status_code == 202
    summary = fits.get_json()["steps"][-1]["job_id"]  # the import's last step: its summary
    done = wait_finished(client, alice, summary, timeout_s=60)
    assert done["status"] == "succeeded" and done["result"]["succeeded"] == 3
