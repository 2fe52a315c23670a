"""Where ``questboard up`` publishes its roles' state, and how /readyz and the console read it.

Each supervisor writes one Redis key (``questboard:supervisor:<host>:<pid>``, JSON, with a TTL) on every
change and every few seconds, from a thread of its own so a slow Redis never holds up supervision. A
supervisor that was killed disappears when its key expires; one that stops cleanly deletes it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from typing import Any

import redis

from shared import defaults, redisurl

SOCKET_TIMEOUT_S = defaults.SUPERVISOR_STATE_SOCKET_TIMEOUT_S


def state_key(host: str, pid: int) -> str:
    return f"{defaults.SUPERVISOR_KEY_PREFIX}{host}:{pid}"


class StatePublisher:
    """Keeps the latest supervisor snapshot in Redis. ``publish`` never blocks; ``close`` deletes the key."""

    def __init__(self, redis_url: str, interval_s: float = defaults.SUPERVISOR_PUBLISH_INTERVAL_S) -> None:
        self._client = redisurl.client(
            redis_url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S
        )
        self._interval_s = interval_s
        self._latest: dict[str, Any] | None = None
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="supervisor-state", daemon=True)
        self._thread.start()

    def publish(self, snapshot: dict[str, Any]) -> None:
        """Remember ``snapshot`` and have the thread write it now."""
        self._latest = snapshot
        self._wake.set()

    def _loop(self) -> None:
        wait_s = self._interval_s
        while not self._closed:
            self._wake.wait(wait_s)
            self._wake.clear()
            if not self._closed:
                # Redis down or restarting (perhaps our own private one): try again soon.
                wait_s = self._interval_s if self._write() else defaults.SUPERVISOR_STATE_RETRY_S

    def _write(self) -> bool:
        snapshot = self._latest
        if snapshot is None:
            return True
        try:
            self._client.set(
                state_key(snapshot["host"], snapshot["pid"]),
                json.dumps(snapshot),
                px=int(defaults.SUPERVISOR_STATE_TTL_S * 1000),
            )
        except (redis.RedisError, OSError):
            return False
        return True

    def close(self) -> None:
        """Stop the thread and remove this supervisor's key (best effort: Redis may already be gone)."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=2 * SOCKET_TIMEOUT_S + 1)
        snapshot = self._latest
        try:
            if snapshot is not None:
                self._client.delete(state_key(snapshot["host"], snapshot["pid"]))
        except (redis.RedisError, OSError):
            pass
        finally:
            self._client.close()


def read_roles(client: redis.Redis) -> list[dict[str, Any]]:
    """Every live supervisor's roles, flat, each with ``supervisor`` (``host:pid``), sorted by it and name."""
    keys = sorted(client.scan_iter(match=defaults.SUPERVISOR_KEY_PREFIX + "*", count=100))
    roles: list[dict[str, Any]] = []
    for raw in client.mget(keys) if keys else []:
        if raw is None:
            continue  # expired between SCAN and MGET
        try:
            snapshot = json.loads(raw)
            supervisor = f"{snapshot['host']}:{snapshot['pid']}"
            roles.extend({"supervisor": supervisor, **role} for role in snapshot["roles"])
        except (ValueError, KeyError, TypeError):
            continue  # not ours to interpret
    return roles


# Delete the lock only if it still holds the dead beat's token (a standby beat may have taken it since).
_RELEASE_IF_HELD = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


def _holder_key(host: str, pid: int) -> str:
    return f"{defaults.BEAT_LOCK_HOLDER_PREFIX}{host}:{pid}"


def record_beat_lock(client: redis.Redis, lock_key: str, token: bytes | str) -> None:
    """Called by beat once it holds RedBeat's leader lock: note this process as its holder."""
    value = json.dumps({"lock_key": lock_key, "token": token.decode() if isinstance(token, bytes) else token})
    client.set(_holder_key(socket.gethostname(), os.getpid()), value, ex=defaults.BEAT_LOCK_HOLDER_TTL_S)


def release_beat_lock(redis_url: str, host: str, pid: int) -> bool:
    """Release the leader lock the dead beat ``host:pid`` held, if it still does. True if released."""
    client = redisurl.client(
        redis_url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S
    )
    try:
        raw = client.getdel(_holder_key(host, pid))
        if raw is None:
            return False
        holder = json.loads(raw)
        return bool(client.eval(_RELEASE_IF_HELD, 1, holder["lock_key"], holder["token"]))
    finally:
        client.close()
