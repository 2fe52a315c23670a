"""Running a worker without a supervisor: ``--detach`` with a pid file, ``stop`` and ``status``.

A pid file whose process is gone (or is no longer a Questboard worker) is stale: it is replaced on start
and reported by status. ``stop`` is a warm shutdown: running jobs may finish until the timeout, after which
the worker is killed and its running jobs go back to the queue without using up an attempt.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import select

from shared import defaults, redisurl
from shared.db import get_sessionmaker
from shared.models import Job
from shared.processes import pid_alive
from shared.settings import Settings
from shared.states import Status

EXIT_NOT_RUNNING = 3


class DaemonError(RuntimeError):
    """Refused, with a message for the operator."""


@dataclass
class PidFile:
    path: Path

    def read(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def live_pid(self) -> int | None:
        """The pid if it names a running Questboard worker, else None (missing or stale)."""
        pid = self.read()
        return pid if pid is not None and is_our_worker(pid) else None

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(f"{pid}\n")
        tmp.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def is_our_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and b"celery" in b" ".join(cmdline) and b"worker" in cmdline


def start_detached(
    argv: list[str], pid_file: PidFile, log_path: Path, env: dict[str, str]
) -> tuple[int, bool]:
    """Start ``argv`` in its own session; returns (pid, replaced_a_stale_pid_file)."""
    live = pid_file.live_pid()
    if live is not None:
        raise DaemonError(f"a worker is already running with pid {live} ({pid_file.path}); stop it first")
    stale = pid_file.read() is not None
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            argv, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    pid_file.write(proc.pid)
    return proc.pid, stale


def wait_started(pid: int, redis_url: str, timeout_s: float = 30.0) -> str | None:
    """The worker's name once its heartbeat shows up; None if it died or did not start in time."""
    deadline = time.monotonic() + timeout_s
    client = redisurl.client(redis_url, decode_responses=True, socket_timeout=2)
    try:
        while time.monotonic() < deadline:
            if not pid_alive(pid):  # (right after fork the cmdline is still ours: only death counts)
                return None
            name = worker_name(client, pid)
            if name:
                return name
            time.sleep(0.2)
    finally:
        client.close()
    return None


def worker_name(client: redis.Redis, pid: int) -> str | None:
    for key in client.scan_iter(match=defaults.WORKER_KEY_PREFIX + "*", count=100):
        raw = client.get(key)
        if raw and json.loads(raw).get("pid") == pid:
            return str(json.loads(raw)["name"])
    return None


def stop(pid_file: PidFile, settings: Settings, timeout_s: float) -> str:
    """Warm shutdown within ``timeout_s``, then kill and requeue. Returns what happened."""
    pid = pid_file.live_pid()
    if pid is None:
        was = pid_file.read()
        pid_file.remove()
        return "not running" + (f" (removed stale pid file for pid {was})" if was is not None else "")
    client = redisurl.client(settings.redis_url, decode_responses=True, socket_timeout=2)
    try:
        name = worker_name(client, pid)
    except redis.RedisError:
        name = None
    os.kill(pid, signal.SIGTERM)  # Celery's warm shutdown: take no new job, finish the running ones
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and is_our_worker(pid):
        time.sleep(0.1)
    if not is_our_worker(pid):
        pid_file.remove()
        return f"stopped (pid {pid})"
    os.killpg(pid, signal.SIGKILL)
    while is_our_worker(pid):
        time.sleep(0.05)
    requeued = requeue_running(settings, name) if name else 0
    pid_file.remove()
    return f"stopped (pid {pid}) after {timeout_s:g} s; {requeued} running job(s) requeued"


def requeue_running(settings: Settings, worker: str) -> int:
    """Send the jobs a killed worker was running back to their queues, attempts untouched."""
    from workers.runtime import lifecycle

    with get_sessionmaker(settings.resolved_database_url)() as session:
        jobs = list(
            session.scalars(select(Job).where(Job.status == Status.RUNNING.value, Job.worker == worker))
        )
    lc = lifecycle()
    return sum(
        1 for job in jobs if lc.requeue(job.id, job.attempts, "Requeued: the worker was stopped") is not None
    )


def status(pid_file: PidFile, settings: Settings) -> tuple[int, str]:
    """(exit code, message): 0 running, 3 not running."""
    pid = pid_file.live_pid()
    if pid is None:
        was = pid_file.read()
        stale = f" (stale pid file: pid {was} is gone)" if was is not None else ""
        return EXIT_NOT_RUNNING, f"not running{stale}"
    try:
        client = redisurl.client(settings.redis_url, decode_responses=True, socket_timeout=2)
        name = worker_name(client, pid)
    except redis.RedisError:
        name = None
    return 0, f"running (pid {pid}{', ' + name if name else ''})"
