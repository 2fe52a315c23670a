"""An installation on namespaced hosts (tests/faults/netns.py): each role a real process on its own host.

Hosts: ``redis`` (redis-server on the Redis network), ``db`` (a TCP proxy on the database network in
front of the machine's PostgreSQL, when the test uses PostgreSQL; a SQLite file needs no host), ``web``
(gunicorn on its own loopback, reached by the test from inside that namespace, on both networks) and
``w1`` / ``w2`` (workers, on both networks). The test process reads Redis through the server's Unix socket,
which no network cut touches.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from questboard.testing import (
    ManagedProcess,
    questboard_env,
    wait_for,
    wait_worker_ready,
    web_process,
    worker_process,
)
from shared.accounts import Accounts
from tests.faults.netns import Network
from tests.faults.proxy import LinkProxy

MODULES = "tests.faults.jobtypes"
WEB_PORT = 8000
REDIS_PORT = 6379
PG_PORT = 5432
FINAL = {"succeeded", "failed", "canceled"}


class Hosts:
    """Start with ``start()``; ``close()`` stops every process and deletes every namespace."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp = tmp_path
        self.database_url = database_url
        self.postgres = database_url.startswith("postgresql")
        names = ["redis", "web", "w1", "w2"] + (["db"] if self.postgres else [])
        self.net = Network(names)
        self.procs: list[ManagedProcess] = []
        self.workers: dict[str, ManagedProcess] = {}
        self.proxy: LinkProxy | None = None
        self.socket_path = tmp_path / "redis" / "redis.sock"
        self.local_redis_url = f"unix://{self.socket_path}?db=0"
        self.redis_url = f"redis://{self.net.address('redis', 'redis')}:{REDIS_PORT}/0"
        self.host_db_url = database_url
        self.accepted: list[str] = []
        self.headers: dict[str, str] = {}

    def start(self) -> Hosts:
        """Redis, the database host (PostgreSQL only) and the web; workers come with ``start_worker``."""
        self._start_redis()
        if self.postgres:
            self._start_db_proxy()
        self.local_redis().set("questboard:broker-epoch", f"test:{time.time() - 3600}")
        person = Accounts(self.database_url).ensure_user("hosts@example.com")
        self.headers = {"Authorization": f"Bearer {Accounts(self.database_url).issue_api_token(person)}"}
        web, _ = web_process(self._env(), self.tmp, port=WEB_PORT)
        web.argv = self.net.wrap("web", web.argv)
        self._spawn(web)
        wait_for(lambda: self._web_up(web), 30, 0.2, what="web on its host")
        return self

    def _start_redis(self) -> None:
        base = self.tmp / "redis"
        base.mkdir(parents=True, exist_ok=True)
        argv = [shutil.which("redis-server") or "redis-server", "--bind", self.net.address("redis", "redis"),
                "--port", str(REDIS_PORT), "--unixsocket", str(self.socket_path), "--unixsocketperm", "700",
                "--dir", str(base), "--save", "", "--appendonly", "no", "--protected-mode", "no"]  # fmt: skip
        self._spawn(ManagedProcess("redis", self.net.wrap("redis", argv), dict(os.environ), base))
        wait_for(self._redis_up, 10, 0.1, what="redis on its host")

    def _start_db_proxy(self) -> None:
        parts = urlsplit(self.database_url)
        address = self.net.address("db", "db")
        listener = self.net.run_in("db", lambda: socket.create_server((address, PG_PORT)))
        self.proxy = LinkProxy(parts.hostname or "127.0.0.1", parts.port or 5432, listener=listener)
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        self.host_db_url = urlunsplit(parts._replace(netloc=f"{auth}{address}:{PG_PORT}"))

    def _env(self, **extra: str) -> dict[str, str]:
        return questboard_env(self.redis_url, self.host_db_url, self.tmp / "i", SECRET_KEY="test-secret",
                              QUESTBOARD_JOB_MODULES=MODULES, **extra)  # fmt: skip

    def _spawn(self, proc: ManagedProcess) -> None:
        self.procs.append(proc)
        proc.start()

    def start_worker(self, host: str, *extra_args: str) -> ManagedProcess:
        """A worker on ``host`` (``w1`` / ``w2``), queue ``default``, ready when this returns."""
        proc = worker_process(self._env(), self.tmp, queues="default", name=host, extra_args=list(extra_args))
        proc.argv = self.net.wrap(host, proc.argv)
        self._spawn(proc)
        self.workers[host] = proc
        wait_worker_ready(proc, self.local_redis_url)
        return proc

    def local_redis(self) -> redis.Redis:
        """A client on the Unix socket (the test's own view; no cut reaches it)."""
        return redis.Redis.from_url(self.local_redis_url, decode_responses=True, socket_timeout=5)

    def _redis_up(self) -> bool:
        try:
            return bool(self.local_redis().ping())
        except (redis.RedisError, OSError):
            return False

    def _web_up(self, web: ManagedProcess) -> bool:
        if not web.alive():
            raise RuntimeError(f"web exited:\n{web.output()[-3000:]}")
        try:
            return self.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def request(self, method: str, path: str, body: Any = None, timeout_s: float = 20.0) -> tuple:
        """(status, JSON body or None, headers, seconds) of one HTTP request to the web, from its host."""

        def call() -> tuple:
            conn = http.client.HTTPConnection("127.0.0.1", WEB_PORT, timeout=timeout_s)
            started = time.monotonic()
            try:
                payload = json.dumps(body) if body is not None else None
                headers = {**self.headers, "Content-Type": "application/json"}
                conn.request(method, path, body=payload, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                took = time.monotonic() - started
                try:
                    data = json.loads(raw) if raw else None
                except ValueError:
                    data = None
                return resp.status, data, dict(resp.getheaders()), took
            finally:
                conn.close()

        return self.net.run_in("web", call, timeout_s=timeout_s + 5)

    def submit(self, steps: int, step_s: float = 0.5) -> tuple:
        """POST one ``fault.ledger`` job; an accepted one joins ``accepted``."""
        params = {"steps": steps, "step_s": step_s}
        answer = self.request("POST", "/api/jobs", {"type": "fault.ledger", "params": params})
        if answer[0] == 202:
            self.accepted.append(answer[1]["id"])
        return answer

    def status(self, job_id: str) -> str:
        answer = self.request("GET", f"/api/jobs/{job_id}")
        assert answer[0] == 200, answer
        return answer[1]["status"]

    def statuses(self) -> dict[str, str]:
        return {job_id: self.status(job_id) for job_id in self.accepted}

    def all_final(self) -> bool:
        return all(status in FINAL for status in self.statuses().values())

    def close(self) -> None:
        """Stop every process (workers first), the proxy, then delete the namespaces."""
        for proc in reversed(self.procs):
            try:
                proc.stop(timeout_s=10)
            except Exception:  # noqa: BLE001 - the rest must still stop
                proc.kill()
        if self.proxy is not None:
            self.proxy.close()
        self.net.close()
