"""Socket.IO namespace ``/jobs``: authenticated on connect, ownership checked on every subscribe."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_socketio import Namespace, emit, join_room, leave_room

from shared.errors import NotFound
from shared.publisher import ADMIN_ROOM, UPDATE_EVENT, job_room, user_room
from web.auth import user_from_session, user_from_token


class JobsNamespace(Namespace):
    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        self._users: dict[str, Any] = {}

    def on_connect(self, auth: dict[str, Any] | None = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        user = user_from_token(token) if isinstance(token, str) else user_from_session()
        if user is None:
            raise ConnectionRefusedError("unauthorized")
        self._users[request.sid] = user

    def on_disconnect(self, reason: Any = None) -> None:
        self._users.pop(request.sid, None)

    def on_subscribe(self, data: Any) -> None:
        """Join the job's room, then replay its current state at once."""
        user = self._users.get(request.sid)
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
        user = self._users.get(request.sid)
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
