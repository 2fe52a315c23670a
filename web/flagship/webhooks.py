"""``POST /webhooks/<source>`` (contract §3): signed deliveries, answered at once, processed by a job.

No session and no bearer token: the HMAC signature is the credential, so the blueprint is CSRF-exempt.
Order of the checks: a malformed timestamp is 400 before anything else (no secret needed), an unknown
source 404, a missing or bad signature or a stale timestamp 401, a body that is not JSON within limits or a
delivery header other than the signed id 400; then 202 (new) or 200 (a repeat of a delivery id).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from shared.flagship.webhooks import (
    MalformedDelivery,
    SignatureError,
    WebhookInbox,
    parse_secrets,
    parse_timestamp,
    read_body,
    verify,
)
from web.auth import api_error
from web.services import services
from web.system import system_jobs

bp = Blueprint("webhooks", __name__)


def inbox() -> WebhookInbox:
    found = current_app.extensions.get("questboard_webhooks")
    if found is None:
        found = WebhookInbox(services().settings.resolved_database_url, system_jobs())
        current_app.extensions["questboard_webhooks"] = found
    return found


@bp.post("/webhooks/<source>")
def receive(source: str) -> Any:
    """Verify, store once and answer a delivery (contract §3)."""
    timestamp = request.headers.get("X-Questboard-Timestamp")
    try:
        if timestamp is not None:
            parse_timestamp(timestamp)
    except MalformedDelivery as exc:
        return api_error(400, "bad_request", str(exc))
    secret = parse_secrets(services().settings.webhook_secrets).get(source)
    if secret is None:
        return api_error(404, "not_found", f"No webhook source {source!r}.")
    body = request.get_data(cache=False)
    try:
        verify(secret, timestamp, request.headers.get("X-Questboard-Signature"), body)
    except SignatureError as exc:
        return api_error(401, "bad_signature", str(exc))
    try:
        signed = read_body(body, request.headers.get("X-Questboard-Delivery"))
    except MalformedDelivery as exc:
        return api_error(400, "bad_request", str(exc))
    receipt = inbox().receive(source, signed, body)
    return jsonify(receipt.to_dict()), 202 if receipt.first else 200
