"""Socket.IO namespace ``/jobs``: authenticated on connect, ownership checked on every subscribe.

A connection lasts only as long as its session or token: ``web.live_guard`` disconnects it once that ends.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import request, session
from flask_socketio import Namespace, disconnect, emit, join_room, leave_room

from shared.errors import NotFound
from shared.publisher import ADMIN_ROOM, UPDATE_EVENT, job_room, user_room
from web.auth import SESSION_ID_KEY, server_sessions, user_from_session, user_from_token
from web.live_guard import SESSION, TOKEN, LiveGuard


class JobsNamespace(Namespace):
    def __init__(self, namespace: str, guard: LiveGuard) -> None:
        super().__init__(namespace)
        self._users: dict[str, Any] = {}
        self._guard = guard

    def on_connect(self, auth: dict[str, Any] | None = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if isinstance(token, str):
            user, recheck = user_from_token(token), functools.partial(user_from_token, token)
            credential = (TOKEN, token)
        else:
            session_id = session.get(SESSION_ID_KEY)
            user = user_from_session()
            recheck = functools.partial(server_sessions().user_for, session_id)
            credential = (SESSION, session_id)
        if user is None:
            raise ConnectionRefusedError("unauthorized")
        self._users[request.sid] = (user, recheck)
        self._guard.add(request.sid, *credential)

    def on_disconnect(self, reason: Any = None) -> None:
        self._users.pop(request.sid, None)
        self._guard.remove(request.sid)

    def _user(self) -> Any:
        """The connection's user while its token or session still holds; a revoked one is disconnected."""
        entry = self._users.get(request.sid)
        if entry is None:
            return None
        user, recheck = entry
        if recheck() is None:  # signed out or revoked since the connection was made
            self._users.pop(request.sid, None)
            emit("error", {"code": "unauthorized"})
            disconnect()
            return None
        return user

    def on_subscribe(self, data: Any) -> None:
        """Join the job's room, then replay its current state at once."""
        user = self._user()
        job_id = data.get("job_id") if isinstance(data, dict) else None
        if user is None or not isinstance(job_id, str) or not job_id:
            emit("error", {"job_id": job_id, "code": "not_found"})
            return
        from web.job_browser import job_browser  # owners, admins and viewers (read-only operators)

        try:
            job_browser().get(user, job_id)
        except NotFound:
            emit("error", {"job_id": job_id, "code": "not_found"})
            return
        # Join before reading, so no update can fall between the replay and the live stream.
        join_room(job_room(job_id))
        emit(UPDATE_EVENT, job_browser().get(user, job_id))

    def on_unsubscribe(self, data: Any) -> None:
        job_id = data.get("job_id") if isinstance(data, dict) else None
        if isinstance(job_id, str):
            leave_room(job_room(job_id))

    def on_watch(self, data: Any) -> None:
        """``{"scope": "mine"}``: updates of all the caller's jobs; ``"all"``: every job (admins)."""
        user = self._user()
        scope = data.get("scope") if isinstance(data, dict) else None
        if user is None:
            return
        if scope == "all":
            if not (user.is_admin or getattr(user, "is_viewer", False)):
                emit("error", {"scope": scope, "code": "forbidden"})
                return
            join_room(ADMIN_ROOM)
        else:
            join_room(user_room(user.id))
