"""A Sentinel failover loses no job: REDIS_URL names a Sentinel service (shared/redisurl.py).

A master, one replica and three Sentinels (redis-server --sentinel) on private loopback ports; a worker
and the real web server reach Redis only through the Sentinels. With jobs running and queued, the master
is SIGKILLed; the Sentinels promote the replica, the worker and the web follow it, every accepted job ends
``succeeded`` with one completed run in the ledger, and new submits are accepted after the failover.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import text

from questboard.testing import (
    ManagedProcess,
    free_port,
    http_ok,
    questboard_env,
    wait_for,
    wait_worker_ready,
    web_process,
    worker_process,
)
from shared.accounts import Accounts
from shared.db import get_engine
from tests.faults.jobtypes import LEDGER_DDL

MODULES = "tests.faults.jobtypes"
MASTER = "qbmaster"


def _redis(name: str, base: Path, port: int, *extra: str) -> ManagedProcess:
    base.mkdir(parents=True, exist_ok=True)
    argv = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(base), "--save", "", "--appendonly", "no", *extra]  # fmt: skip
    return ManagedProcess(name, argv, {}, base)


def _sentinel(base: Path, port: int, master_port: int) -> ManagedProcess:
    base.mkdir(parents=True, exist_ok=True)
    conf = base / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {base}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n"
        f"sentinel down-after-milliseconds {MASTER} 1000\n"
        f"sentinel failover-timeout {MASTER} 10000\n"
        f"sentinel parallel-syncs {MASTER} 1\n"
    )
    binary = shutil.which("redis-server") or "redis-server"
    return ManagedProcess(f"sentinel-{port}", [binary, str(conf), "--sentinel"], {}, base)


def _master_port(sentinel_port: int) -> int | None:
    client = redis.Redis(port=sentinel_port, socket_timeout=1, decode_responses=True)
    try:
        found = client.execute_command("SENTINEL", "get-master-addr-by-name", MASTER)
        return int(found[1]) if found else None
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def _sentinels_ready(ports: list[int]) -> bool:
    for port in ports:
        client = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
        try:
            info = client.execute_command("SENTINEL", "master", MASTER)
            info = dict(zip(info[::2], info[1::2], strict=False)) if isinstance(info, list) else info
            if int(info["num-slaves"]) < 1 or int(info["num-other-sentinels"]) < len(ports) - 1:
                return False
        except (redis.RedisError, OSError, KeyError):
            return False
        finally:
            client.close()
    return True


@pytest.fixture
def sentinel_service(tmp_path: Path):
    master_port, replica_port = free_port(), free_port()
    sentinel_ports = [free_port() for _ in range(3)]
    master = _redis("master", tmp_path / "master", master_port)
    replica = _redis(
        "replica", tmp_path / "replica", replica_port, "--replicaof", "127.0.0.1", str(master_port)
    )
    sentinels = [_sentinel(tmp_path / f"s{p}", p, master_port) for p in sentinel_ports]
    procs = [master, replica, *sentinels]
    try:
        for proc in procs:
            proc.start()
        wait_for(
            lambda: _sentinels_ready(sentinel_ports), 30, 0.2, what="3 sentinels watching master + replica"
        )
        hosts = ";".join(f"sentinel://127.0.0.1:{p}" for p in sentinel_ports)
        yield {
            "url": f"{hosts}/0?master_name={MASTER}",
            "master": master,
            "master_port": master_port,
            "replica_port": replica_port,
            "sentinel_ports": sentinel_ports,
        }
    finally:
        for proc in reversed(procs):
            proc.stop(timeout_s=5)


def test_a_sentinel_failover_loses_no_job(sentinel_service: dict[str, Any], tmp_path: Path, sqlite_url: str):
    svc = sentinel_service
    url = svc["url"]
    direct = f"redis://127.0.0.1:{svc['master_port']}/0"
    redis.Redis.from_url(direct).set("questboard:broker-epoch", f"test:{time.time() - 3600}")
    with get_engine(sqlite_url).begin() as conn:
        conn.execute(text(LEDGER_DDL))
    env = questboard_env(
        url, sqlite_url, tmp_path / "i", SECRET_KEY="test-secret", QUESTBOARD_JOB_MODULES=MODULES
    )
    person = Accounts(sqlite_url).ensure_user("sentinel@example.com")
    token = Accounts(sqlite_url).issue_api_token(person)
    worker = worker_process(env, tmp_path, queues="default", name="sentinel")
    web, base_url = web_process(env, tmp_path)
    accepted: list[str] = []

    def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=20) as resp:  # noqa: S310 - loopback
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def submit() -> int:
        status, body = call("POST", "/api/jobs", {"type": "fault.ledger", "params": {"steps": 6}})
        assert status in (202, 503), (status, body)
        if status == 202:
            accepted.append(body["id"])
        return status

    def statuses() -> dict[str, str]:
        return {j: call("GET", f"/api/jobs/{j}")[1]["status"] for j in accepted}

    try:
        worker.start()
        web.start()
        wait_worker_ready(worker, direct)
        wait_for(lambda: http_ok(base_url + "/healthz"), 20, what="web")
        for _ in range(4):
            assert submit() == 202  # 3 s each: two run, two wait
        wait_for(lambda: "running" in statuses().values(), 20, 0.2, what="jobs running")
        svc["master"].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(
            lambda: _master_port(svc["sentinel_ports"][0]) == svc["replica_port"], 30, 0.2, what="failover"
        )
        print(f"\nsentinel failover: replica promoted {time.monotonic() - killed_at:.2f} s after the kill")
        wait_for(lambda: submit() == 202, 20, 0.5, what="a submit accepted after the failover")
        print(f"sentinel failover: first submit accepted {time.monotonic() - killed_at:.2f} s after the kill")
        for _ in range(2):
            assert submit() == 202
        final = {"succeeded", "failed", "canceled"}
        wait_for(lambda: all(s in final for s in statuses().values()), 60, 0.5, what="every job final")
        print(f"sentinel failover: all {len(accepted)} jobs final {time.monotonic() - killed_at:.2f} s after")
        assert statuses() == dict.fromkeys(accepted, "succeeded")
        with get_engine(sqlite_url).connect() as conn:
            ledger = conn.execute(text("SELECT job_id FROM fault_ledger")).scalars().all()
        assert sorted(ledger) == sorted(accepted)  # each completed once (the key is unique)
        wait_for(lambda: call("GET", "/readyz")[0] == 200, 30, 0.5, what="/readyz 200 after the failover")
        _the_other_clients_follow_the_new_master(url, tmp_path, sqlite_url)
    finally:
        web.stop(timeout_s=10)
        worker.stop(timeout_s=10)


def _the_other_clients_follow_the_new_master(url: str, tmp_path: Path, sqlite_url: str) -> None:
    """Rate limits, RedBeat and the direct clients reach the promoted master through the Sentinels."""
    from redbeat.schedulers import get_redis

    from shared import redisurl
    from shared.ratelimits import RateLimiter
    from shared.settings import Settings
    from workers.celery_app import make_celery

    assert redisurl.client(url, socket_timeout=2).set("qb:sentinel-check", "1")  # a write: the master
    assert RateLimiter(url).try_start("sentinel.check", "5/minute") is None
    settings = Settings(redis_url=url, database_url=sqlite_url, instance_dir=tmp_path / "i", secret_key="x")
    assert get_redis(make_celery(settings)).set("qb:redbeat-check", "1")
