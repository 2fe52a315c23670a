"""``mail.deliver``: sends one outbox mail over SMTP (``SMTP_URL``); without it the mail stays for /dev/mail.

A mail already marked sent is not sent again, so a retried or repeated job does not mail twice (short of
a crash between the SMTP server's acceptance and the database write: delivery is at least once).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared import signin_links
from shared.errors import PermanentError
from shared.jobtypes import JobContext, JobType, RetryPolicy
from shared.mail import build_message, parse_smtp_url, send_smtp
from shared.models import OutboxMail, User, utcnow
from shared.settings import get_settings
from shared.system import SYSTEM_EMAIL

SIGN_IN_LINK = re.compile(r"(/login/)[A-Za-z0-9_-]+")


class DeliverParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outbox_id: int = Field(ge=1, description="The outbox mail to send.")


def perform(ctx: JobContext, params: DeliverParams) -> dict[str, Any]:
    settings = get_settings()
    with ctx.session() as session:
        mail = session.get(OutboxMail, params.outbox_id)
        if mail is None:
            raise PermanentError(f"No outbox mail {params.outbox_id}.")
        session.expunge(mail)
        owner = session.get(User, ctx.user_id)
        if owner is None or not (
            owner.is_admin or owner.email == SYSTEM_EMAIL or owner.email == mail.to_addr
        ):
            # Outbox ids are sequential: nobody may send (or read the address of) another user's mail.
            raise PermanentError(f"No outbox mail {params.outbox_id}.")
    result: dict[str, Any] = {"outbox_id": mail.id, "to": mail.to_addr}
    if mail.sent_at is not None:
        return {**result, "delivered": True, "note": "already sent"}
    if not settings.smtp_url:
        ctx.progress(100, "SMTP_URL is unset: the mail waits in the outbox (/dev/mail)")
        return {**result, "delivered": False, "note": "SMTP_URL is unset"}
    try:
        target = parse_smtp_url(settings.smtp_url)
    except ValueError as exc:
        raise PermanentError(str(exc)) from exc
    ctx.progress(10, f"Sending to {mail.to_addr} via {target.host}:{target.port}")
    # The sign-in link's token exists only in this rendered copy (shared.signin_links).
    mail.body = signin_links.render(mail.body, settings.resolved_secret_key())
    send_smtp(target, build_message(mail, settings.mail_from))
    with ctx.session() as session:
        stored = session.get(OutboxMail, mail.id)
        if stored is not None:
            stored.sent_at = utcnow()
            # Sign-in links are stored only as hashes: keep no usable copy once the mail is gone.
            stored.body = SIGN_IN_LINK.sub(r"\1" + signin_links.REMOVED, signin_links.strip(stored.body))
    ctx.progress(100, f"Sent to {mail.to_addr}")
    return {**result, "delivered": True}


JOB = JobType(
    name="mail.deliver",
    description="Sends one mail from the outbox over SMTP (SMTP_URL).",
    params=DeliverParams,
    perform=perform,
    queue="high",
    retry=RetryPolicy(max_attempts=5, backoff_base_s=10.0, backoff_max_s=600.0),
    unique_by=lambda p: str(p.outbox_id),
    # Most SMTP relays throttle senders; stay under a typical relay's limit across every worker.
    rate_limit="60 per minute",
    internal=True,
    time_limit_seconds=60,
)
