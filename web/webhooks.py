"""``POST /webhooks/<source>`` (contract §3): signed deliveries, answered at once, processed by a job.

No session and no bearer token: the HMAC signature is the credential, so the blueprint is CSRF-exempt.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from shared.webhooks import SignatureError, WebhookInbox, delivery_id_of, parse_secrets, verify
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
    secret = parse_secrets(services().settings.webhook_secrets).get(source)
    if secret is None:
        return api_error(404, "not_found", f"No webhook source {source!r}.")
    body = request.get_data(cache=False)
    signature = request.headers.get("X-Questboard-Signature")
    try:
        verify(secret, request.headers.get("X-Questboard-Timestamp"), signature, body)
    except SignatureError as exc:
        return api_error(401, "bad_signature", str(exc))
    delivery_id = delivery_id_of(request.headers.get("X-Questboard-Delivery"), body, signature or "")
    receipt = inbox().receive(source, delivery_id, body)
    return jsonify(receipt.to_dict()), 202 if receipt.first else 200
