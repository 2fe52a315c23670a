"""Helpers for the processes ``questboard up`` runs: the private Redis, Python module command lines.

Starting, restarting and stopping them is questboard.supervisor's job.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import redis

from shared import redisurl

REDIS_WAIT_S = 4.0


def redis_answers(url: str, timeout_s: float = 1.0) -> bool:
    try:
        client = redisurl.client(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


class RedisUnavailable(RuntimeError):
    pass


HOW_TO_GET_REDIS = (
    "Install Redis (Debian/Ubuntu: 'sudo apt-get install redis-server', macOS: 'brew install redis') "
    "or point REDIS_URL at a running Redis."
)


def private_redis_target(url: str) -> tuple[str, int]:
    """(host, port) a private ``redis-server`` for ``url`` would bind; RedisUnavailable if it cannot be."""
    if redisurl.is_sentinel(url):  # a Sentinel service is never replaced by a private server
        raise RedisUnavailable(f"No master answers at REDIS_URL={redisurl.describe(url)}.")
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise RedisUnavailable(f"Nothing answers at REDIS_URL={_redact(url)}. {HOW_TO_GET_REDIS}")
    if shutil.which("redis-server") is None:
        raise RedisUnavailable(
            f"Nothing answers at REDIS_URL={_redact(url)} and redis-server is not on PATH. {HOW_TO_GET_REDIS}"
        )
    return "127.0.0.1", port


def private_redis_argv(url: str, data_dir: Path) -> list[str]:
    """The ``redis-server`` command line for a private Redis at ``url`` (data and log in ``data_dir``, which
    must exist when it starts)."""
    parts = urlsplit(url)
    _host, port = private_redis_target(url)
    argv = [
        shutil.which("redis-server") or "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
        "--logfile",
        str(data_dir / "redis.log"),
    ]
    if parts.password:
        argv += ["--requirepass", parts.password]
    return argv


def wait_redis(url: str, alive: Callable[[], bool], timeout_s: float = REDIS_WAIT_S) -> None:
    """Wait until Redis answers at ``url``; RedisUnavailable if it does not in time or ``alive()`` turns
    false (the server exited)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if redis_answers(url, 0.2):
            return
        if not alive():
            break
        time.sleep(0.05)
    port = urlsplit(url).port or 6379
    raise RedisUnavailable(f"Started redis-server on port {port}, but it did not answer. {HOW_TO_GET_REDIS}")


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
