"""Signed webhooks (contract §3) through the Flask app, a real worker and Redis, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from sqlalchemy import func, select

from shared import defaults
from shared.db import get_sessionmaker
from shared.flagship.webhooks import sign
from shared.models import Job, WebhookDelivery
from shared.system import SYSTEM_EMAIL
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
        "non-ASCII signature": post(client, body, X_Questboard_Signature="sha256=\xe9t\xe9"),
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
    body = json.dumps({"id": "dlv-1", "event": "ping", "data": {"n": 1}}).encode()
    first = post(client, body, X_Questboard_Delivery="dlv-1")  # the header may repeat the body's id
    assert first.status_code == 202  # CSRF-exempt: no token needed
    receipt = first.get_json()
    assert receipt["delivery_id"] == "dlv-1" and receipt["job_id"]

    done = wait_finished(client, admin, receipt["job_id"])
    assert done["type"] == "webhook.process" and done["status"] == "succeeded"
    assert done["result"]["action"] == "pong" and done["result"]["delivery_id"] == "dlv-1"

    # The sender retries (new timestamp, same delivery id): same answer, nothing new runs.
    again = post(client, body)
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
    first = post(client, b'{"event": "ping"}')
    wait_finished(client, admin, first.get_json()["job_id"])
    resp = client.post(
        "/api/jobs", json={"type": "webhook.process", "params": {"delivery": 1}}, headers=alice.headers
    )
    # webhook.process is internal: refused like an unknown type, nothing created.
    assert resp.status_code == 422 and resp.get_json()["error"]["fields"] == {"type": "unknown job type"}
    assert client.get("/api/jobs", headers=alice.headers).get_json()["jobs"] == []


def counts(settings) -> tuple[int, int, int]:
    """Stored deliveries, the characters of their bodies, and webhook.process jobs."""
    with get_sessionmaker(settings.resolved_database_url)() as db:
        rows = db.scalar(select(func.count()).select_from(WebhookDelivery))
        chars = db.scalar(select(func.coalesce(func.sum(func.length(WebhookDelivery.body)), 0)))
        jobs = db.scalar(select(func.count()).select_from(Job).where(Job.type == "webhook.process"))
    return rows, chars, jobs


def captured(body: bytes) -> dict[str, str]:
    """The headers of a request as an eavesdropper saw it (a replay sends them again within 300 s)."""
    stamp = str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "X-Questboard-Timestamp": stamp,
        "X-Questboard-Signature": sign(SECRET, stamp, body),
    }


def test_the_delivery_id_comes_only_from_the_signed_body(client, settings):
    hashed = json.dumps({"event": "order.paid", "n": 7}).encode()
    first = post(client, hashed)
    assert first.status_code == 202
    assert first.get_json()["delivery_id"] == hashlib.sha256(hashed).hexdigest()
    numbered = post(client, b'{"id": 42, "event": "ping"}', X_Questboard_Delivery="42")
    assert numbered.status_code == 202 and numbered.get_json()["delivery_id"] == "42"

    # The header is not signed: one that differs from the body's id (or hash) is refused.
    for body, header in ((hashed, "dlv-new"), (b'{"id": 42, "event": "ping"}', "43"), (hashed, "")):
        resp = post(client, body, X_Questboard_Delivery=header)
        assert resp.status_code == 400, header
        assert (
            resp.get_json()["error"]["code"] == "bad_request"
            and "X-Questboard-Delivery" in resp.get_json()["error"]["message"]
        )
    assert counts(settings)[0] == 2 and counts(settings)[2] == 2


def test_a_captured_request_replayed_with_new_headers_creates_nothing(client, settings):
    body = json.dumps({"event": "order.paid", "blob": "x" * 2_000_000}).encode()  # 2 MB, no id
    headers = captured(body)
    first = client.post("/webhooks/shop", data=body, headers=headers)
    assert first.status_code == 202
    stored = counts(settings)
    assert stored == (1, len(body), 1)

    for n in range(5):
        replay = client.post(
            "/webhooks/shop", data=body, headers={**headers, "X-Questboard-Delivery": f"r{n}"}
        )
        assert replay.status_code == 400, replay.get_json()
        same = client.post("/webhooks/shop", data=body, headers=headers)  # the very same request again
        assert same.status_code == 200 and same.get_json() == first.get_json()
    assert counts(settings) == stored  # one row, one copy of the body, one job


@pytest.mark.parametrize(
    "timestamp",
    ["1" + "0" * 400, "soon", "-1700000000", "1700000000.5", "1e9", "", " ", "0x65", "１２３"],
    ids=["400-zeros", "word", "negative", "float", "exponent", "empty", "blank", "hex", "fullwidth"],
)
@pytest.mark.parametrize("source", ["shop", "nope"])
def test_a_malformed_timestamp_is_400_before_anything_else(client, settings, source, timestamp):
    resp = client.post(
        f"/webhooks/{source}",
        data=b"[" * 1000,
        headers={
            "X-Questboard-Timestamp": timestamp.encode("utf-8").decode("latin-1"),
            "X-Questboard-Signature": "x",
        },
    )
    assert resp.status_code == 400 and resp.is_json
    assert "X-Questboard-Timestamp" in resp.get_json()["error"]["message"]
    assert counts(settings) == (0, 0, 0)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[" * 100_000,
        b'{"a": NaN}',
        b"[1e999999]",
        b"\xff\xfe",
        b'{"id": "%s"}' % (b"x" * 201),
    ],
    ids=["empty", "text", "100000-brackets", "nan", "huge-number", "not-utf8", "long-id"],
)
def test_a_signed_body_that_is_not_json_within_limits_is_400(client, settings, body):
    resp = client.post("/webhooks/shop", data=body, headers=captured(body))
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_request"
    assert counts(settings) == (0, 0, 0)


def test_the_order_of_the_answers(client, settings):
    body = b"[" * 100_000  # malformed, but only a signed body is looked at
    assert post(client, body, source="nope").status_code == 404
    assert post(client, body, secret="guess").status_code == 401
    assert post(client, body).status_code == 400
    big = b" " * (defaults.MAX_REQUEST_BYTES + 1)
    too_big = post(client, big)
    assert too_big.status_code == 413 and too_big.get_json()["error"]["code"] == "request_entity_too_large"
    assert counts(settings) == (0, 0, 0)
