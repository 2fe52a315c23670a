"""``login.mail``: the sign-in form's work, done off the request so every address costs the same there.

``POST /login`` only checks the form and its rate limits and submits this job (owned by the system
user) with the address. The job looks the address up; only for an existing user does it create a magic
link and a sign-in mail, handed to a ``mail.deliver`` child. The mail is stored with a placeholder for
the link (shared.signin_links), so the outbox never holds a usable link.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from shared.accounts import (
    LOGIN_MAIL_SUBJECT,
    MAGIC_LINK_PATH,
    add_magic_link,
    login_mail_body,
    normalize_email,
)
from shared.errors import PermanentError
from shared.jobtypes import JobContext, JobType, RetryPolicy
from shared.mail import queue_mail
from shared.models import Job, User
from shared.settings import get_settings
from shared.signin_links import link_token, new_placeholder
from shared.system import SYSTEM_EMAIL

MAIL_KEY = "login-mail"


class LoginMailParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320, description="The address typed into the sign-in form.")
    base_url: str | None = Field(
        None, max_length=500, description="The web's public URL for the link (default QUESTBOARD_BASE_URL)."
    )


def perform(ctx: JobContext, params: LoginMailParams) -> dict[str, Any]:
    from workers.followups import submit_child

    settings = get_settings()
    with ctx.session() as session:
        owner = session.get(User, ctx.user_id)
        if owner is None or owner.email != SYSTEM_EMAIL:
            # Only the sign-in form (the system user) may mail sign-in links: no one mails another.
            raise PermanentError("login.mail is submitted by the sign-in form only.")
        key = f"{ctx.job_id}:{MAIL_KEY}"
        if session.scalars(
            select(Job.id).where(Job.parent_id == ctx.job_id, Job.idempotency_key == key)
        ).first():
            return {"mailed": True, "note": "already queued"}  # a retried attempt
        try:
            email = normalize_email(params.email)
        except ValueError:
            return {"mailed": False}
        user = session.scalars(select(User).where(User.email == email)).first()
        if user is None or user.email == SYSTEM_EMAIL:
            return {"mailed": False}
        placeholder, nonce = new_placeholder()
        add_magic_link(session, user.id, link_token(settings.resolved_secret_key(), nonce))
        link = (params.base_url or settings.base_url).rstrip("/") + MAGIC_LINK_PATH + placeholder
        mail_id = queue_mail(session, user.email, LOGIN_MAIL_SUBJECT, login_mail_body(link)).id
    submit_child(ctx, "mail.deliver", {"outbox_id": mail_id}, MAIL_KEY, for_system=True)
    ctx.progress(100, "Sign-in mail queued")
    return {"mailed": True, "outbox_id": mail_id}


JOB = JobType(
    name="login.mail",
    description="Mails a sign-in link to the address typed into the sign-in form, if it has an account. "
    "Submitted by the sign-in form only.",
    params=LoginMailParams,
    perform=perform,
    queue="high",
    retry=RetryPolicy(max_attempts=5, backoff_base_s=2.0, backoff_max_s=60.0),
    internal=True,
    time_limit_seconds=60,
)
