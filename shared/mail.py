"""Outgoing mail: the outbox table and SMTP delivery (``SMTP_URL``).

Mail is never sent inside a web request. It is stored in ``outbox_mail`` and a ``mail.deliver`` job sends
it; without ``SMTP_URL`` it stays in the outbox, where ``/dev/mail`` shows it.

``SMTP_URL`` forms: ``smtp://host:port`` (plain), ``smtp+starttls://host:port`` (upgraded with STARTTLS),
``smtps://host:port`` (TLS from the start); ``user:password@`` before the host logs in.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.errors import PermanentError, TransientError
from shared.models import OutboxMail, User

SMTP_TIMEOUT_S = 30.0
DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True)
class SmtpTarget:
    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None


def parse_smtp_url(url: str) -> SmtpTarget:
    """``SMTP_URL`` as its parts; a ValueError names what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"SMTP_URL scheme must be one of {', '.join(DEFAULT_PORTS)}, not {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("SMTP_URL has no host")
    return SmtpTarget(
        scheme=parts.scheme,
        host=parts.hostname,
        port=parts.port or DEFAULT_PORTS[parts.scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def queue_mail(session: Session, to_addr: str, subject: str, body: str) -> OutboxMail:
    """Add a mail to the outbox in the caller's transaction; flushed, so its id is known."""
    mail = OutboxMail(to_addr=to_addr, subject=subject[:300], body=body)
    session.add(mail)
    session.flush()
    return mail


def build_message(mail: OutboxMail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to_addr
    message["Subject"] = mail.subject
    # A stable Message-ID per outbox row lets receivers spot a resend after a lost acknowledgement.
    message["Message-ID"] = make_msgid(idstring=f"outbox-{mail.id}", domain="questboard.local")
    message.set_content(mail.body)
    return message


def send_smtp(target: SmtpTarget, message: EmailMessage, timeout_s: float = SMTP_TIMEOUT_S) -> None:
    """Deliver one message; TransientError when another try may work, PermanentError when none will."""
    try:
        if target.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                target.host, target.port, timeout=timeout_s, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(target.host, target.port, timeout=timeout_s)
        with client:
            if target.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if target.username:
                client.login(target.username, target.password or "")
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(code >= 500 for code in codes):
            raise PermanentError(f"recipient refused: {exc.recipients}") from exc
        raise TransientError(f"recipient deferred: {exc.recipients}") from exc
    except smtplib.SMTPResponseException as exc:
        error = PermanentError if exc.smtp_code >= 500 else TransientError
        raise error(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
    except (smtplib.SMTPException, OSError) as exc:  # OSError covers timeouts and refused connections
        raise TransientError(f"SMTP server unreachable: {exc}") from exc


def visible_outbox(session: Session, user: User, limit: int = 100) -> list[OutboxMail]:
    """The newest mails ``user`` may preview: their own, or every mail for an admin."""
    stmt = select(OutboxMail).order_by(OutboxMail.id.desc()).limit(limit)
    if not user.is_admin:
        stmt = stmt.where(OutboxMail.to_addr == user.email)
    return list(session.scalars(stmt))
