"""Starting and stopping the processes ``questboard up`` runs, each in its own process group.

Only what was started here is ever signalled, by its process group id.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import redis

REDIS_WAIT_S = 4.0
STOP_TIMEOUT_S = 60.0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env={**os.environ, **self.env}, start_new_session=True)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.alive() and self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)  # its own group: started with start_new_session
            except ProcessLookupError:
                pass


def stop_all(children: list[Child], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop the services, then the private Redis they use (so finishing jobs can still ack)."""
    _stop_group([c for c in children if c.name != "redis"], timeout_s)
    _stop_group([c for c in children if c.name == "redis"], timeout_s)


def _stop_group(children: list[Child], timeout_s: float) -> None:
    """SIGTERM each child's leader (a warm shutdown: workers finish running jobs), wait, then SIGKILL
    the groups of what is left. Pool processes are not signalled directly: their parent stops them."""
    for child in reversed(children):
        if child.alive() and child.proc is not None:
            try:
                os.kill(child.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout_s
    for child in reversed(children):
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.proc.wait()


def redis_answers(url: str, timeout_s: float = 1.0) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


class RedisUnavailable(RuntimeError):
    pass


def private_redis(url: str, data_dir: Path) -> Child:
    """Start ``redis-server`` for ``url`` (a local one only), wait until it answers, return it."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    how = (
        "Install Redis (Debian/Ubuntu: 'sudo apt-get install redis-server', macOS: 'brew install redis') "
        "or point REDIS_URL at a running Redis."
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise RedisUnavailable(f"Nothing answers at REDIS_URL={_redact(url)}. {how}")
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(
            f"Nothing answers at REDIS_URL={_redact(url)} and redis-server is not on PATH. {how}"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
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
    child = Child("redis", argv)
    child.start()
    deadline = time.monotonic() + REDIS_WAIT_S
    while time.monotonic() < deadline:
        if redis_answers(url, 0.2):
            return child
        if not child.alive():
            break
        time.sleep(0.05)
    stop_all([child], timeout_s=2)
    raise RedisUnavailable(f"Started redis-server on port {port}, but it did not answer. {how}")


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
