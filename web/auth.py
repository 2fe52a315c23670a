"""Who is asking: a bearer token (API, Socket.IO) or the session cookie set by a magic link (pages).

The cookie is Flask's signed session; it carries a random server-side session id (``SESSION_ID_KEY``),
and only the ``user_sessions`` row it names says whose it is (shared.sessions): sign-out and
``questboard users revoke`` end it on the server, so an old copy of the cookie opens nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, jsonify, redirect, request, session, url_for

from shared.models import User
from shared.sessions import ServerSessions
from web.live_guard import end_session_connections
from web.services import services

F = TypeVar("F", bound=Callable[..., Any])
SESSION_ID_KEY = "sid"


def server_sessions() -> ServerSessions:
    """This app's session store (built on first use)."""
    store = current_app.extensions.get("questboard_sessions")
    if store is None:
        url = services().settings.resolved_database_url
        store = current_app.extensions["questboard_sessions"] = ServerSessions(url)
    return store


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def user_from_token(token: str | None) -> User | None:
    return services().accounts.user_for_token(token) if token else None


def user_from_session() -> User | None:
    """The user of the request's session cookie while its server-side session holds."""
    session_id = session.get(SESSION_ID_KEY)
    if not isinstance(session_id, str):
        return None
    return server_sessions().user_for(session_id)


def log_in(user: User) -> None:
    """Start a server-side session for ``user`` and put its id into the cookie."""
    session.clear()  # no fixation: nothing from before the login survives it
    session[SESSION_ID_KEY] = server_sessions().start(user)
    session.permanent = True


def log_out() -> None:
    """End the request's session on the server, and its live connections here; clear the cookie."""
    session_id = session.get(SESSION_ID_KEY)
    if isinstance(session_id, str):
        server_sessions().end(session_id)
        end_session_connections(session_id)  # other web processes: at their next re-check
    session.clear()


def api_error(status: int, code: str, message: str, **extra: Any) -> Any:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update(extra)
    return jsonify({"error": body}), status


def api_user_required(view: F) -> F:
    """401 JSON without a valid bearer token."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        user = user_from_token(bearer_token())
        if user is None:
            return api_error(
                401, "unauthorized", "A valid 'Authorization: Bearer <token>' header is required."
            )
        g.user = user
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def api_admin_required(view: F) -> F:
    """401 without a token, 403 for a token that is not an admin's."""

    @wraps(view)
    @api_user_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not g.user.is_admin:
            return api_error(403, "forbidden", "This needs an admin token.")
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def login_required(view: F) -> F:
    """Pages: redirect to /login (and back afterwards) without a session."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        user = user_from_session()
        if user is None:
            return redirect(url_for("pages.login", next=request.path))
        g.user = user
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
