"""Mail in the web app: every queued mail gets a ``mail.deliver`` job, and ``/dev/mail`` previews the outbox.

``/dev/mail`` exists in debug (``QUESTBOARD_DEBUG=1``) or while ``SMTP_URL`` is unset, i.e. whenever mail
may never leave the machine; it needs a session. People see the mail sent to them; admins see all, but a
sign-in link is rendered only for its addressee (admins see a note in its place).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, abort, g, render_template

from shared import signin_links
from shared.accounts import normalize_email
from shared.db import get_sessionmaker
from shared.mail import visible_outbox
from web.auth import login_required
from web.services import services
from web.system import system_jobs

bp = Blueprint("mail", __name__)
log = logging.getLogger("questboard.web.mail")
MAIL_JOB = "mail.deliver"
LOGIN_MAIL_JOB = "login.mail"


def request_login_mail(email: str) -> None:
    """Submit the sign-in form's ``login.mail`` job for a well-formed address (as the system user)."""
    try:
        email = normalize_email(email)
    except ValueError:
        return  # not an address: nothing to mail, and the same page as for any other
    try:
        system_jobs().submit(LOGIN_MAIL_JOB, {"email": email, "base_url": services().settings.base_url})
    except Exception:  # the person may ask again; a failed submit must not fail the form
        log.exception("could not submit login.mail")


def init_app(app: Flask) -> None:
    """Register the preview and make the accounts service hand every queued mail to a job."""
    app.register_blueprint(bp)

    def deliver_later(outbox_id: int) -> None:
        try:
            system_jobs(app).submit(MAIL_JOB, {"outbox_id": outbox_id})
        except Exception:  # the mail is safe in the outbox; a failed submit must not fail the login form
            log.exception("could not submit mail.deliver", extra={"outbox_id": outbox_id})

    app.extensions["questboard"].accounts.on_mail_queued = deliver_later


def preview_enabled() -> bool:
    settings = services().settings
    return settings.debug or not settings.smtp_url


@bp.get("/dev/mail")
@login_required
def outbox() -> Any:
    if not preview_enabled():
        abort(404)
    settings = services().settings
    with get_sessionmaker(settings.resolved_database_url)() as db:
        mails = visible_outbox(db, g.user)
        db.expunge_all()
    for mail in mails:  # detached: the rendered link is shown, never written back
        if mail.to_addr == g.user.email:
            mail.body = signin_links.render(mail.body, settings.resolved_secret_key())
        else:  # an admin reading another's mail sees that a link was sent, not one to sign in with
            mail.body = signin_links.strip(mail.body, signin_links.NOT_YOURS)
    return render_template("dev_mail.html", mails=mails, smtp=bool(services().settings.smtp_url))
