"""Signed webhooks (contract §3): verify, store each delivery once, hand it to a ``webhook.process`` job.

The signature is ``sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`` with the source's secret from
``QUESTBOARD_WEBHOOK_SECRETS`` (``source:secret[,source:secret…]``). A timestamp more than
``MAX_CLOCK_SKEW_S`` from now is refused, so a captured request cannot be replayed later; within the
window a replay carries the same delivery id and is answered with the first delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shared.db import get_sessionmaker
from shared.models import WebhookDelivery
from shared.system import SystemJobs

MAX_CLOCK_SKEW_S = 300
MAX_DELIVERY_ID_CHARS = 200
PROCESS_JOB = "webhook.process"


class SignatureError(Exception):
    """The request is not signed by the source it claims (answered 401)."""


def parse_secrets(raw: str | None) -> dict[str, str]:
    """``source:secret[,source:secret…]`` as a dict; entries without both parts are ignored."""
    found: dict[str, str] = {}
    for entry in (raw or "").split(","):
        source, _, secret = entry.strip().partition(":")
        if source.strip() and secret.strip():
            found[source.strip()] = secret.strip()
    return found


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Questboard-Signature`` value for this timestamp and body."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None
) -> None:
    """Raise ``SignatureError`` unless the signature matches and the timestamp is within the window."""
    if not timestamp or not signature:
        raise SignatureError("X-Questboard-Timestamp and X-Questboard-Signature are required.")
    try:
        sent_at = int(timestamp.strip())
    except ValueError as exc:
        raise SignatureError("X-Questboard-Timestamp must be unix seconds.") from exc
    if abs((now if now is not None else time.time()) - sent_at) > MAX_CLOCK_SKEW_S:
        raise SignatureError(f"The timestamp is more than {MAX_CLOCK_SKEW_S} s away from the server's clock.")
    if not hmac.compare_digest(sign(secret, timestamp.strip(), body), signature.strip()):
        raise SignatureError("The signature does not match the body.")


def delivery_id_of(header: str | None, body: bytes, signature: str) -> str:
    """The header, else the JSON body's ``id``, else one derived from the signature (a replay repeats it)."""
    if header and header.strip():
        return header.strip()[:MAX_DELIVERY_ID_CHARS]
    payload = _json(body)
    if isinstance(payload, dict) and isinstance(payload.get("id"), str | int) and str(payload["id"]).strip():
        return str(payload["id"]).strip()[:MAX_DELIVERY_ID_CHARS]
    return "sig-" + hashlib.sha256(signature.encode()).hexdigest()[:40]


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def event_of(body: bytes) -> str | None:
    """The body's ``event`` (or ``type``) field, when the body is a JSON object that has one."""
    payload = _json(body)
    if isinstance(payload, dict):
        value = payload.get("event", payload.get("type"))
        if isinstance(value, str):
            return value[:100]
    return None


@dataclass(frozen=True)
class Receipt:
    delivery_id: str
    job_id: str | None
    first: bool  # False when this delivery id was seen before

    def to_dict(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "job_id": self.job_id}


class WebhookInbox:
    """Stores verified deliveries and submits one ``webhook.process`` job per delivery."""

    def __init__(self, database_url: str, system: SystemJobs) -> None:
        self._sessions = get_sessionmaker(database_url)
        self.system = system

    def receive(self, source: str, delivery_id: str, body: bytes) -> Receipt:
        row, first = self._store(source, delivery_id, body)
        job_id = row.job_id
        if job_id is None:
            # Also reached by a repeat that raced the first, or after a crash between store and submit:
            # the idempotency key makes every caller get the same single job.
            job, _ = self.system.submit(
                PROCESS_JOB, {"delivery": row.id}, idempotency_key=f"webhook:{row.id}"
            )
            job_id = job["id"]
            with self._sessions() as session:
                stored = session.get(WebhookDelivery, row.id)
                if stored is not None and stored.job_id is None:
                    stored.job_id = job_id
                    session.commit()
        return Receipt(delivery_id=delivery_id, job_id=job_id, first=first)

    def _store(self, source: str, delivery_id: str, body: bytes) -> tuple[WebhookDelivery, bool]:
        with self._sessions() as session:
            existing = self._find(session, source, delivery_id)
            if existing is not None:
                return existing, False
            row = WebhookDelivery(
                source=source,
                delivery_id=delivery_id,
                event=event_of(body),
                body=body.decode("utf-8", errors="replace"),
            )
            session.add(row)
            try:
                session.commit()
                return row, True
            except IntegrityError:  # the same delivery arrived concurrently
                session.rollback()
                existing = self._find(session, source, delivery_id)
                assert existing is not None
                return existing, False

    @staticmethod
    def _find(session: Any, source: str, delivery_id: str) -> WebhookDelivery | None:
        return session.scalars(
            select(WebhookDelivery).where(
                WebhookDelivery.source == source, WebhookDelivery.delivery_id == delivery_id
            )
        ).first()
