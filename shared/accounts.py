"""Users, API tokens and magic links. Tokens are shown once and stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared import defaults
from shared.db import get_engine, get_sessionmaker
from shared.models import ApiToken, MagicLink, OutboxMail, User, utcnow

MAGIC_LINK_PATH = "/login/"
_USERS = User.__table__
_TOKENS = ApiToken.__table__
TOKEN_PREFIX_CHARS = 11  # "qb_" and 8 random characters: tells tokens apart, useless to sign in with
USER_FOR_TOKEN = (
    select(*_USERS.c, _TOKENS.c.id.label("token_row_id"), _TOKENS.c.last_used_at.label("token_last_used_at"))
    .select_from(_USERS.join(_TOKENS, _TOKENS.c.user_id == _USERS.c.id))
    .where(_TOKENS.c.token_hash == bindparam("b_hash"))
    .limit(1)
)
TOUCH_TOKEN = update(_TOKENS).where(_TOKENS.c.id == bindparam("b_id")).values(last_used_at=bindparam("b_now"))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or " " in email or len(email) > 320:
        raise ValueError(f"not an email address: {email!r}")
    return email


def add_magic_link(session: Session, user_id: int, token: str) -> None:
    """Add a magic-link row for ``token`` (only its hash) in the caller's transaction."""
    session.add(
        MagicLink(
            user_id=user_id,
            token_hash=hash_token(token),
            expires_at=utcnow() + timedelta(seconds=defaults.MAGIC_LINK_TTL_S),
        )
    )


LOGIN_MAIL_SUBJECT = "Your Questboard sign-in link"


def login_mail_body(link: str) -> str:
    """The text of a sign-in mail carrying ``link``."""
    return (
        "Hello,\n\nOpen this link to sign in to Questboard. It works once and expires in "
        f"{defaults.MAGIC_LINK_TTL_S // 60} minutes:\n\n{link}\n\n"
        "If you did not ask for it, ignore this mail.\n"
    )


class Accounts:
    # Called with the outbox id of every mail queued here; the web app sets it to submit a mail.deliver
    # job (shared cannot reach Celery). Unset (the CLI), mail just waits in the outbox.
    on_mail_queued: Callable[[int], None] | None = None

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._sessions = get_sessionmaker(database_url)

    def ensure_user(self, email: str, admin: bool = False) -> User:
        """The user with this email, created if missing; ``admin=True`` promotes an existing one."""
        email = normalize_email(email)
        with self._sessions() as session:
            user = session.scalars(select(User).where(User.email == email)).first()
            if user is None:
                user = User(email=email, is_admin=admin)
                session.add(user)
                try:
                    session.commit()
                except IntegrityError:  # created concurrently
                    session.rollback()
                    user = session.scalars(select(User).where(User.email == email)).one()
            if admin and not user.is_admin:
                user.is_admin = True
                session.commit()
            session.refresh(user)
            session.expunge(user)
            return user

    def find_user(self, email: str) -> User | None:
        try:
            email = normalize_email(email)
        except ValueError:
            return None
        with self._sessions() as session:
            user = session.scalars(select(User).where(User.email == email)).first()
            if user is not None:
                session.expunge(user)
            return user

    def get_user(self, user_id: int) -> User | None:
        with self._sessions() as session:
            user = session.get(User, user_id)
            if user is not None:
                session.expunge(user)
            return user

    def issue_api_token(self, user: User) -> str:
        token = "qb_" + secrets.token_urlsafe(32)
        with self._sessions() as session:
            session.add(
                ApiToken(user_id=user.id, token_hash=hash_token(token), prefix=token[:TOKEN_PREFIX_CHARS])
            )
            session.commit()
        return token

    def user_for_token(self, token: str) -> User | None:
        if not token:
            return None
        # Every API request asks this: a prebuilt Core SELECT on a pooled connection, no Session.
        with get_engine(self._url).connect() as conn:
            row = conn.execute(USER_FOR_TOKEN, {"b_hash": hash_token(token)}).mappings().first()
            if row is None:
                return None
            fields = dict(row)
            token_id, used = fields.pop("token_row_id"), fields.pop("token_last_used_at")
            now = utcnow()
            # "Last used" for `questboard users tokens`, written at most every TOKEN_TOUCH_INTERVAL_S.
            if used is None or now - used >= timedelta(seconds=defaults.TOKEN_TOUCH_INTERVAL_S):
                conn.execute(TOUCH_TOKEN, {"b_id": token_id, "b_now": now})
                conn.commit()
        return User(**fields)

    def create_magic_link(self, user: User, base_url: str) -> str:
        """A single-use login URL, valid for ``MAGIC_LINK_TTL_S`` (shown once; stored only hashed)."""
        token = secrets.token_urlsafe(32)
        with self._sessions() as session:
            add_magic_link(session, user.id, token)
            session.commit()
        return base_url.rstrip("/") + MAGIC_LINK_PATH + token

    def consume_magic_link(self, token: str) -> User | None:
        """The link's user if the link is known, unused and unexpired; it is spent either way."""
        now = utcnow()
        with self._sessions() as session:
            link = session.scalars(
                update(MagicLink)
                .where(
                    MagicLink.token_hash == hash_token(token),
                    MagicLink.used_at.is_(None),
                    MagicLink.expires_at > now,
                )
                .values(used_at=now)
                .returning(MagicLink)
            ).one_or_none()
            session.commit()
            if link is None:
                return None
            user = session.get(User, link.user_id)
            if user is not None:
                session.expunge(user)
            return user

    def queue_login_mail(self, user: User, link: str) -> None:
        """Store the login mail in the outbox (delivery is the mail job's work)."""
        body = login_mail_body(link)
        from shared.system import SYSTEM_EMAIL

        if user.email == SYSTEM_EMAIL:
            return  # the system user does not sign in
        with self._sessions() as session:
            mail = OutboxMail(to_addr=user.email, subject=LOGIN_MAIL_SUBJECT, body=body)
            session.add(mail)
            session.commit()
            mail_id = mail.id
        if self.on_mail_queued is not None:
            self.on_mail_queued(mail_id)
