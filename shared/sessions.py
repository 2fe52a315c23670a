"""Server-side browser sessions and the end of access (sign-out, ``users revoke``, ``users tokens``).

The session cookie (Flask's signed cookie) carries only a random session id; the ``user_sessions`` row
keyed by its SHA-256 says whose it is and whether it still holds. A session ends when it is revoked
(sign-out, ``questboard users revoke``), ``SESSION_LIFETIME_S`` after sign-in, or after
``SESSION_IDLE_TIMEOUT_S`` without a request. ``last_seen_at`` is written at most every
``SESSION_TOUCH_INTERVAL_S``, so a busy page does not write once per request.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, bindparam, delete, select, update

from shared import defaults
from shared.accounts import hash_token, normalize_email
from shared.db import get_engine, get_sessionmaker
from shared.models import ApiToken, User, UserSession, utcnow

_USERS = User.__table__
_SESSIONS = UserSession.__table__
USER_FOR_SESSION = (
    select(
        *_USERS.c,
        _SESSIONS.c.id.label("session_row_id"),
        _SESSIONS.c.last_seen_at.label("session_last_seen_at"),
    )
    .select_from(_USERS.join(_SESSIONS, _SESSIONS.c.user_id == _USERS.c.id))
    .where(
        _SESSIONS.c.id_hash == bindparam("b_hash"),
        _SESSIONS.c.revoked_at.is_(None),
        _SESSIONS.c.expires_at > bindparam("b_now"),
        _SESSIONS.c.last_seen_at > bindparam("b_idle_since"),
    )
    .limit(1)
)
# Hashes per query of a batch check: more than one web process holds connections, so one query.
CHECK_BATCH = 1000
TOUCH_SESSION = (
    update(_SESSIONS).where(_SESSIONS.c.id == bindparam("b_id")).values(last_seen_at=bindparam("b_now"))
)


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown of an API token: never the token itself."""

    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class UnknownUser(LookupError):
    """No user with that address."""


class ServerSessions:
    """The ``user_sessions`` table and the revocation of sessions and API tokens."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._sessions = get_sessionmaker(database_url)

    def start(self, user: User) -> str:
        """A new session for ``user``; returns the random id the cookie carries (stored only hashed)."""
        session_id = secrets.token_urlsafe(32)
        now = utcnow()
        with self._sessions() as db:
            db.add(
                UserSession(
                    id_hash=hash_token(session_id),
                    user_id=user.id,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + timedelta(seconds=defaults.SESSION_LIFETIME_S),
                )
            )
            db.commit()
        return session_id

    def user_for(self, session_id: str) -> User | None:
        """The session's user while it holds (not revoked, expired or idle too long); else None."""
        if not session_id:
            return None
        now = utcnow()
        params = {
            "b_hash": hash_token(session_id),
            "b_now": now,
            "b_idle_since": now - timedelta(seconds=defaults.SESSION_IDLE_TIMEOUT_S),
        }
        with get_engine(self._url).connect() as conn:
            row = conn.execute(USER_FOR_SESSION, params).mappings().first()
            if row is None:
                return None
            fields = dict(row)
            row_id, seen = fields.pop("session_row_id"), fields.pop("session_last_seen_at")
            if now - seen >= timedelta(seconds=defaults.SESSION_TOUCH_INTERVAL_S):
                conn.execute(TOUCH_SESSION, {"b_id": row_id, "b_now": now})
                conn.commit()
        return User(**fields)

    def holding_sessions(self, id_hashes: Collection[str]) -> set[str]:
        """Of these session-id hashes, those whose session still holds (one query per batch).

        The same conditions as ``user_for``, but nothing is touched: an open connection is not a request,
        so it does not keep an idle session alive.
        """
        now = utcnow()
        idle_since = now - timedelta(seconds=defaults.SESSION_IDLE_TIMEOUT_S)
        c = _SESSIONS.c
        return self._holding(
            id_hashes,
            lambda chunk: select(c.id_hash).where(
                c.id_hash.in_(chunk),
                c.revoked_at.is_(None),
                c.expires_at > now,
                c.last_seen_at > idle_since,
            ),
        )

    def holding_tokens(self, token_hashes: Collection[str]) -> set[str]:
        """Of these API-token hashes, those of tokens that still exist (one query per batch)."""
        tokens = ApiToken.__table__
        return self._holding(
            token_hashes,
            lambda chunk: (
                select(tokens.c.token_hash)
                .select_from(tokens.join(_USERS, _USERS.c.id == tokens.c.user_id))
                .where(tokens.c.token_hash.in_(chunk))
            ),
        )

    def _holding(self, hashes: Collection[str], query: Callable[[list[str]], Select]) -> set[str]:
        ordered, found = sorted(hashes), set[str]()
        if not ordered:
            return found
        with get_engine(self._url).connect() as conn:
            for start in range(0, len(ordered), CHECK_BATCH):
                found.update(conn.scalars(query(ordered[start : start + CHECK_BATCH])))
        return found

    def end(self, session_id: str) -> None:
        """Sign-out: the session is revoked, its cookie no longer works anywhere."""
        if not session_id:
            return
        with self._sessions() as db:
            db.execute(
                update(UserSession)
                .where(UserSession.id_hash == hash_token(session_id), UserSession.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            db.commit()

    # ----- operators: `questboard users revoke` / `users tokens` ---------------------------------------

    def _user(self, email: str) -> User:
        try:
            email = normalize_email(email)
        except ValueError as exc:
            raise UnknownUser(str(exc)) from exc
        with self._sessions() as db:
            user = db.scalars(select(User).where(User.email == email)).first()
            if user is None:
                raise UnknownUser(f"no user {email!r}")
            db.expunge(user)
            return user

    def revoke_user(self, email: str) -> tuple[int, int]:
        """End every session and API token of the user; returns (sessions ended, tokens ended)."""
        user = self._user(email)
        with self._sessions() as db:
            ended = db.execute(
                update(UserSession)
                .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            ).rowcount
            tokens = db.execute(delete(ApiToken).where(ApiToken.user_id == user.id)).rowcount
            db.commit()
        return ended or 0, tokens or 0

    def tokens(self, email: str) -> list[TokenInfo]:
        """The user's API tokens, oldest first, by prefix."""
        user = self._user(email)
        with self._sessions() as db:
            rows = db.execute(
                select(ApiToken.id, ApiToken.prefix, ApiToken.created_at, ApiToken.last_used_at)
                .where(ApiToken.user_id == user.id)
                .order_by(ApiToken.id)
            ).all()
        return [TokenInfo(prefix or f"id{id_}", created, used) for id_, prefix, created, used in rows]

    def revoke_token(self, email: str, prefix: str) -> None:
        """End the one token of the user with this prefix; LookupError if none (or several) match."""
        user = self._user(email)
        with self._sessions() as db:
            ids = list(
                db.scalars(select(ApiToken.id).where(ApiToken.user_id == user.id, ApiToken.prefix == prefix))
            )
            if len(ids) != 1:
                raise LookupError(f"{user.email} has no token with prefix {prefix!r}")
            db.execute(delete(ApiToken).where(ApiToken.id == ids[0]))
            db.commit()
