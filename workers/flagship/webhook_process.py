"""``webhook.process``: acts on one stored webhook delivery, exactly once per delivery.

The action and the delivery's ``processed_at`` are written in one transaction, and only a delivery not
yet processed is claimed, so a retried or repeated job never acts twice. Add an event by adding a
function to ``HANDLERS``; events without one are recorded as ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update
from sqlalchemy.orm import Session

from shared.errors import PermanentError
from shared.jobtypes import JobContext, JobType, RetryPolicy
from shared.models import WebhookDelivery, utcnow
from workers.permissions import require_operator

Handler = Callable[[Session, WebhookDelivery, Any], dict[str, Any]]


def _ping(session: Session, delivery: WebhookDelivery, payload: Any) -> dict[str, Any]:
    return {"action": "pong"}


HANDLERS: dict[str, Handler] = {"ping": _ping}


class ProcessParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delivery: int = Field(ge=1, description="The stored delivery (created by POST /webhooks/<source>).")


def perform(ctx: JobContext, params: ProcessParams) -> dict[str, Any]:
    require_operator(ctx)
    with ctx.session() as session:
        delivery = session.get(WebhookDelivery, params.delivery)
        if delivery is None:
            raise PermanentError(f"No webhook delivery {params.delivery}.")
        summary = {"source": delivery.source, "delivery_id": delivery.delivery_id, "event": delivery.event}
        if delivery.processed_at is not None:
            return {**summary, **(delivery.outcome or {}), "note": "already processed"}
        try:
            payload = json.loads(delivery.body) if delivery.body else None
        except ValueError:
            payload = None
        handler = HANDLERS.get(delivery.event or "")
        outcome = handler(session, delivery, payload) if handler else {"action": "ignored"}
        claimed = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id, WebhookDelivery.processed_at.is_(None))
            .values(processed_at=utcnow(), outcome=outcome)
        ).rowcount
        if not claimed:  # processed meanwhile by another run: undo this one's effects
            session.rollback()
            return {**summary, "note": "already processed"}
    ctx.progress(100, f"Processed {summary['source']} delivery {summary['delivery_id']}: {outcome['action']}")
    return {**summary, **outcome}


JOB = JobType(
    name="webhook.process",
    description="Acts on one signed webhook delivery (created by POST /webhooks/<source>), once.",
    params=ProcessParams,
    perform=perform,
    queue="default",
    retry=RetryPolicy(max_attempts=5, backoff_base_s=2.0, backoff_max_s=300.0),
    unique_by=lambda p: str(p.delivery),
    internal=True,
    time_limit_seconds=120,
)
