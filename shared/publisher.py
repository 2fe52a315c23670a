"""Publishes job updates to Socket.IO rooms through Redis, from any process.

Workers emit through python-socketio's write-only Redis manager (the message queue Flask-SocketIO
listens on); the web processes relay to their connected clients. One PUBLISH per update.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from shared import defaults

NAMESPACE = "/jobs"
UPDATE_EVENT = "job:update"
ADMIN_ROOM = "admins"

log = logging.getLogger(__name__)


def job_room(job_id: str) -> str:
    return f"job:{job_id}"


def user_room(user_id: int) -> str:
    return f"user:{user_id}"


class Publisher(Protocol):
    def job_update(self, job: dict[str, Any], user_id: int) -> None: ...


class SocketIOPublisher:
    """Emits ``job:update`` to the job's room, its owner's room and the operators' room."""

    def __init__(self, redis_url: str, channel: str = defaults.SOCKETIO_CHANNEL) -> None:
        import socketio

        self._manager = socketio.RedisManager(redis_url, channel=channel, write_only=True)

    def job_update(self, job: dict[str, Any], user_id: int) -> None:
        rooms = [job_room(job["id"]), user_room(user_id), ADMIN_ROOM]
        try:
            self._manager.emit(UPDATE_EVENT, job, namespace=NAMESPACE, room=rooms)
        except Exception as exc:  # Redis down: the database has the state and subscribers replay it
            log.warning("publish failed", extra={"job_id": job["id"], "error": repr(exc)})


class NullPublisher:
    """For tools that change jobs where nobody can be listening (migrations, one-off scripts)."""

    def job_update(self, job: dict[str, Any], user_id: int) -> None:
        return None
