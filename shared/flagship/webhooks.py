"""Signed webhooks (contract §3): verify, store each delivery once, hand it to a ``webhook.process`` job.

The signature is ``sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`` with the source's secret from
``QUESTBOARD_WEBHOOK_SECRETS`` (``source:secret[,source:secret…]``). A timestamp more than
``MAX_CLOCK_SKEW_S`` from now is refused, so a captured request cannot be replayed later. The delivery id
comes only from what is signed: the body's ``id``, else the SHA-256 of the body. So a replay within the
window carries the same id and is answered with the first delivery; an ``X-Questboard-Delivery`` header,
which is not signed, may only repeat that id.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shared import jsonlimits
from shared.db import get_sessionmaker
from shared.models import WebhookDelivery
from shared.system import SystemJobs

MAX_CLOCK_SKEW_S = 300
MAX_DELIVERY_ID_CHARS = 200
MAX_TIMESTAMP_DIGITS = 12
PROCESS_JOB = "webhook.process"


class SignatureError(Exception):
    """The request is not signed by the source it claims (answered 401)."""


class MalformedDelivery(ValueError):
    """A timestamp that is not unix seconds, a body that is not JSON within limits, or a delivery header
    that differs from the signed delivery id (answered 400)."""


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


def parse_timestamp(raw: str) -> int:
    """``X-Questboard-Timestamp`` as unix seconds; ``MalformedDelivery`` unless it is 1-12 digits."""
    text = raw.strip()
    if not (0 < len(text) <= MAX_TIMESTAMP_DIGITS and text.isascii() and text.isdigit()):
        raise MalformedDelivery(
            f"X-Questboard-Timestamp must be unix seconds (1-{MAX_TIMESTAMP_DIGITS} digits)."
        )
    return int(text)


def verify(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None
) -> None:
    """Raise ``SignatureError`` unless the signature matches and the timestamp is within the window
    (``MalformedDelivery`` for a timestamp that is not unix seconds)."""
    if not timestamp or not signature:
        raise SignatureError("X-Questboard-Timestamp and X-Questboard-Signature are required.")
    sent_at = parse_timestamp(timestamp)
    if abs((now if now is not None else time.time()) - sent_at) > MAX_CLOCK_SKEW_S:
        raise SignatureError(f"The timestamp is more than {MAX_CLOCK_SKEW_S} s away from the server's clock.")
    expected = sign(secret, timestamp.strip(), body).encode()
    # As bytes: compare_digest refuses str with non-ASCII characters (a header may carry any).
    if not hmac.compare_digest(expected, signature.strip().encode("utf-8", errors="replace")):
        raise SignatureError("The signature does not match the body.")


@dataclass(frozen=True)
class SignedBody:
    """What a verified body says: its delivery id and event."""

    delivery_id: str
    event: str | None


def read_body(body: bytes, header: str | None = None) -> SignedBody:
    """The delivery id (the JSON body's ``id``, a string or number, else the SHA-256 hex of the body) and
    the event. ``MalformedDelivery`` for a body that is not JSON within limits, an ``id`` too long, or a
    ``header`` (``X-Questboard-Delivery``) that is not that id."""
    try:
        payload = jsonlimits.loads(body)
    except ValueError as exc:  # not JSON, not UTF-8, too deep, a number out of range
        raise MalformedDelivery(f"The body must be JSON: {exc}") from exc
    delivery_id = hashlib.sha256(body).hexdigest()
    event = None
    if isinstance(payload, dict):
        given = payload.get("id")
        if isinstance(given, str | int | float) and not isinstance(given, bool) and str(given).strip():
            delivery_id = str(given).strip()
        if len(delivery_id) > MAX_DELIVERY_ID_CHARS:
            raise MalformedDelivery(f"The body's id is longer than {MAX_DELIVERY_ID_CHARS} characters.")
        value = payload.get("event", payload.get("type"))
        event = value[:100] if isinstance(value, str) else None
    if header is not None and header.strip() != delivery_id:
        raise MalformedDelivery(
            "X-Questboard-Delivery differs from the delivery id of the signed body "
            "(its id, else its SHA-256); send the same id or none."
        )
    return SignedBody(delivery_id=delivery_id, event=event)


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

    def receive(self, source: str, signed: SignedBody, body: bytes) -> Receipt:
        """Store the delivery unless its id was seen (then the first one answers) and submit its job."""
        delivery_id = signed.delivery_id
        row, first = self._store(source, signed, body)
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

    def _store(self, source: str, signed: SignedBody, body: bytes) -> tuple[WebhookDelivery, bool]:
        delivery_id = signed.delivery_id
        with self._sessions() as session:
            existing = self._find(session, source, delivery_id)
            if existing is not None:
                return existing, False
            row = WebhookDelivery(
                source=source,
                delivery_id=delivery_id,
                event=signed.event,
                body=body.decode("utf-8"),  # read_body parsed it: valid UTF-8
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
