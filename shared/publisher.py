"""Publishes job updates to Socket.IO rooms through Redis, from any process.

Workers and the web emit through python-socketio's write-only Redis manager (the message queue
Flask-SocketIO listens on); the web processes relay to their connected clients. The message is built by
python-socketio; only its transport is ours: ``job_updates`` sends several updates (a commit's moves of
one user's jobs; a job's held progress reports with the write that stores them, see shared.progressbuffer)
as ONE Redis PUBLISH of a ``batch`` envelope, which the web's ``UnbatchingRedisManager`` unpacks, in order,
into the messages python-socketio would have sent one by one. A web without it would drop the envelope:
the web and the workers of one installation run the same release.
A publish is a notification, not state: the database has the state and a subscriber replays it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import socketio

from shared import defaults, redisurl

NAMESPACE = "/jobs"
UPDATE_EVENT = "job:update"
ADMIN_ROOM = "admins"
BATCH = "questboard-batch"  # the envelope's method: no python-socketio method has this name

log = logging.getLogger(__name__)


def job_room(job_id: str) -> str:
    return f"job:{job_id}"


def user_room(user_id: int) -> str:
    return f"user:{user_id}"


class Publisher(Protocol):
    def job_update(self, job: dict[str, Any], user_id: int) -> None: ...

    def job_updates(self, jobs: list[dict[str, Any]], user_id: int) -> None: ...


class BatchingRedisManager(socketio.RedisManager):  # type: ignore[misc]
    """A write-only ``socketio.RedisManager`` that can send the messages emitted in a ``batch()`` at once."""

    def __init__(self, url: str, channel: str) -> None:
        super().__init__(
            url,
            channel=channel,
            write_only=True,
            redis_options={
                "socket_timeout": defaults.REDIS_SOCKET_TIMEOUT_S,
                "socket_connect_timeout": defaults.REDIS_CONNECT_TIMEOUT_S,
            },
        )
        self._local = threading.local()
        self._paused_until = 0.0  # monotonic; see _send

    def _publish(self, data: Any) -> None:
        pending = getattr(self._local, "pending", None)
        if pending is None:
            self._send(data)  # one PUBLISH
        else:
            pending.append(data)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Messages emitted inside are sent together, in order, in one PUBLISH (one message: as is)."""
        self._local.pending = []
        try:
            yield
        finally:
            pending, self._local.pending = self._local.pending, None
            if pending:
                self._send(pending[0] if len(pending) == 1 else {"method": BATCH, "messages": pending})

    def _send(self, message: dict[str, Any]) -> None:
        """One PUBLISH, tried twice (reconnecting). After both failed, publishing pauses for
        ``PUBLISH_PAUSE_AFTER_FAILURE_S``: a frozen or cut Redis costs its timeouts once, not once per
        message (a worker's committer publishes each owner's updates in turn, the web each submit's)."""
        if time.monotonic() < self._paused_until:
            return  # a notification: the database has the state and subscribers replay it
        payload = self.json.dumps(message)
        for attempt in (1, 2):
            try:
                if not self.connected:
                    self._redis_connect()
                self.redis.publish(self.channel, payload)
                return
            except Exception as exc:  # Redis down: the database has the state and subscribers replay it
                self.connected = False
                if attempt == 2:
                    self._paused_until = time.monotonic() + defaults.PUBLISH_PAUSE_AFTER_FAILURE_S
                    count = len(message.get("messages", [message]))
                    extra = {"count": count, "error": repr(exc)}
                    log.warning("publish failed; publishing paused", extra=extra)


class UnbatchingRedisManager(socketio.RedisManager):  # type: ignore[misc]
    """The web's Socket.IO message-queue manager: as python-socketio's, and a ``batch`` envelope (see the
    module doc) is handled as its messages, in order."""

    def _listen(self) -> Iterator[Any]:
        for message in super()._listen():
            try:  # decoded once here; python-socketio takes a dict as it is
                data = message if isinstance(message, dict) else self.json.loads(message)
            except Exception:  # not JSON: python-socketio would drop it too
                continue
            if not isinstance(data, dict):
                continue  # no message of python-socketio's is anything else
            if data.get("method") == BATCH:
                yield from (m for m in data.get("messages", ()) if isinstance(m, dict))
            else:
                yield data


class SocketIOPublisher:
    """Emits ``job:update`` to the job's room, its owner's room and the operators' room."""

    def __init__(self, redis_url: str, channel: str = defaults.SOCKETIO_CHANNEL) -> None:
        self._manager = BatchingRedisManager(redisurl.socketio_url(redis_url), channel)

    def job_update(self, job: dict[str, Any], user_id: int) -> None:
        rooms = [job_room(job["id"]), user_room(user_id), ADMIN_ROOM]
        try:
            self._manager.emit(UPDATE_EVENT, job, namespace=NAMESPACE, room=rooms)
        except Exception as exc:  # never let a notification fail a change that is already committed
            log.warning("publish failed", extra={"job_id": job["id"], "error": repr(exc)})

    def job_updates(self, jobs: list[dict[str, Any]], user_id: int) -> None:
        """Several updates of one user's jobs, in order, in one round trip."""
        with self._manager.batch():
            for job in jobs:
                self.job_update(job, user_id)


class NullPublisher:
    """For tools that change jobs where nobody can be listening (migrations, one-off scripts)."""

    def job_update(self, job: dict[str, Any], user_id: int) -> None:
        return None

    def job_updates(self, jobs: list[dict[str, Any]], user_id: int) -> None:
        return None
