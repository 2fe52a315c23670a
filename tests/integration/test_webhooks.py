"""Signed webhooks (contract §3) through the Flask app, a real worker and Redis, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select

from shared.db import get_sessionmaker
from shared.models import Job, WebhookDelivery
from shared.system import SYSTEM_EMAIL
from shared.webhooks import sign
from tests.integration.helpers_app import wait_finished

SECRET = "s3cret-value"


@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"webhook_secrets": f"shop:{SECRET}, crm:other"})


@pytest.fixture
def env(env):
    return {**env, "QUESTBOARD_WEBHOOK_SECRETS": f"shop:{SECRET}"}


def post(client, body: bytes, source: str = "shop", secret: str = SECRET, ts: int | None = None, **headers):
    stamp = str(int(time.time()) if ts is None else ts)
    base = {
        "Content-Type": "application/json",
        "X-Questboard-Timestamp": stamp,
        "X-Questboard-Signature": sign(secret, stamp, body),
    }
    base.update({k.replace("_", "-"): v for k, v in headers.items()})
    return client.post(
        f"/webhooks/{source}", data=body, headers={k: v for k, v in base.items() if v is not None}
    )


def test_unknown_source_is_404_and_bad_signatures_are_401(client):
    body = b'{"event": "ping"}'
    assert post(client, body, source="nope").status_code == 404
    cases = {
        "wrong secret": post(client, body, secret="guess"),
        "stale timestamp": post(client, body, ts=int(time.time()) - 301),
        "future timestamp": post(client, body, ts=int(time.time()) + 301),
        "no signature": post(client, body, X_Questboard_Signature=None),
        "no timestamp": post(client, body, X_Questboard_Timestamp=None),
        "body changed": client.post(
            "/webhooks/shop",
            data=b'{"event": "pong"}',
            headers={
                "X-Questboard-Timestamp": str(int(time.time())),
                "X-Questboard-Signature": sign(SECRET, str(int(time.time())), body),
            },
        ),
    }
    for case, resp in cases.items():
        assert resp.status_code == 401, case
        assert resp.get_json()["error"]["code"] == "bad_signature", case


def test_valid_delivery_is_accepted_at_once_and_processed_once(client, admin, settings, worker):
    body = json.dumps({"event": "ping", "data": {"n": 1}}).encode()
    first = post(client, body, X_Questboard_Delivery="dlv-1")
    assert first.status_code == 202  # CSRF-exempt: no token needed
    receipt = first.get_json()
    assert receipt["delivery_id"] == "dlv-1" and receipt["job_id"]

    done = wait_finished(client, admin, receipt["job_id"])
    assert done["type"] == "webhook.process" and done["status"] == "succeeded"
    assert done["result"]["action"] == "pong" and done["result"]["delivery_id"] == "dlv-1"

    # The sender retries (new timestamp, same delivery id): same answer, nothing new runs.
    again = post(client, body, X_Questboard_Delivery="dlv-1")
    assert again.status_code == 200 and again.get_json() == receipt
    sessions = get_sessionmaker(settings.resolved_database_url)
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
        assert db.scalar(select(func.count()).select_from(Job).where(Job.type == "webhook.process")) == 1
        delivery = db.scalars(select(WebhookDelivery)).one()
        assert delivery.processed_at is not None and delivery.outcome == {"action": "pong"}
        owner = db.get(Job, receipt["job_id"])
        assert owner is not None
    listed = client.get("/api/jobs?type=webhook.process", headers=admin.headers).get_json()["jobs"]
    assert [j["id"] for j in listed] == [receipt["job_id"]]
    assert client.get("/api/search?q=x", headers=admin.headers).status_code == 200
    from shared.accounts import Accounts

    assert Accounts(settings.resolved_database_url).find_user(SYSTEM_EMAIL).id == owner.user_id


def test_delivery_id_from_the_body_and_a_repeat_of_it(client):
    body = json.dumps({"id": "evt_42", "event": "order.paid"}).encode()
    first = post(client, body)
    assert first.status_code == 202 and first.get_json()["delivery_id"] == "evt_42"
    repeat = post(client, body)
    assert repeat.status_code == 200 and repeat.get_json() == first.get_json()
    # Another source may use the same id: deliveries are per source.
    other = client.post(
        "/webhooks/crm",
        data=body,
        headers={
            "X-Questboard-Timestamp": (t := str(int(time.time()))),
            "X-Questboard-Signature": sign("other", t, body),
        },
    )
    assert other.status_code == 202 and other.get_json()["job_id"] != first.get_json()["job_id"]


def test_a_user_cannot_run_webhook_processing_through_the_api(client, alice, admin, worker):
    first = post(client, b'{"event": "ping"}', X_Questboard_Delivery="dlv-x")
    wait_finished(client, admin, first.get_json()["job_id"])
    resp = client.post(
        "/api/jobs", json={"type": "webhook.process", "params": {"delivery": 1}}, headers=alice.headers
    )
    # webhook.process is internal: refused like an unknown type, nothing created.
    assert resp.status_code == 422 and resp.get_json()["error"]["fields"] == {"type": "unknown job type"}
    assert client.get("/api/jobs", headers=alice.headers).get_json()["jobs"] == []
