"""SIGKILL of a whole worker, and Redis restarted empty, while a worker runs 2 jobs and holds 2: every
accepted job ends succeeded, each body ran to completion once (ledger table with a unique key), the
recovery time is printed and /readyz answers 200 afterwards."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import text

from questboard.testing import (
    ManagedProcess,
    RedisServer,
    questboard_env,
    wait_for,
    wait_worker_ready,
    worker_process,
)
from shared.accounts import Accounts
from shared.db import get_engine
from shared.settings import Settings
from tests.faults.jobtypes import LEDGER_DDL

MODULES = "tests.faults.jobtypes"
RECOVERY_BOUND_S = 15.0
FINAL = {"succeeded", "failed", "canceled"}


class LedgerStack:
    def __init__(self, tmp_path: Path, db_url: str) -> None:
        from web import create_app

        self.tmp_path, self.db_url = tmp_path, db_url
        with get_engine(db_url).begin() as conn:
            conn.execute(text(LEDGER_DDL))
        self.redis = RedisServer(tmp_path / "redis", appendonly=False).start()
        redis.Redis.from_url(self.redis.url).set("questboard:broker-epoch", f"test:{time.time() - 3600}")
        self.workers: list[ManagedProcess] = []
        settings = Settings(
            redis_url=self.redis.url,
            database_url=db_url,
            instance_dir=tmp_path / "i",
            secret_key="x",
            job_modules=MODULES,
        )
        self.client = create_app(settings, TESTING=True).test_client()
        person = Accounts(db_url).ensure_user("crash@example.com")
        self.headers = {"Authorization": f"Bearer {Accounts(db_url).issue_api_token(person)}"}
        self.accepted: list[str] = []

    def worker(self, name: str, prefetch: int = 1, concurrency: int = 2) -> ManagedProcess:
        env = questboard_env(self.redis.url, self.db_url, self.tmp_path / "i", QUESTBOARD_JOB_MODULES=MODULES)
        proc = worker_process(
            env,
            self.tmp_path,
            queues="default",
            name=name,
            extra_args=["--prefetch-multiplier", str(prefetch)],
        )
        self.workers.append(proc)
        proc.start()
        wait_worker_ready(proc, self.redis.url)
        return proc

    def submit(self, steps: int) -> None:
        resp = self.client.post(
            "/api/jobs", json={"type": "fault.ledger", "params": {"steps": steps}}, headers=self.headers
        )
        assert resp.status_code == 202, resp.get_json()
        self.accepted.append(resp.get_json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return self.client.get(f"/api/jobs/{job_id}", headers=self.headers).get_json()

    def hold_four(self) -> None:
        """A worker runs 2 jobs (4 s each) and holds 2 more it took from Redis."""
        for _ in range(4):
            self.submit(steps=8)
        wait_for(
            lambda: (
                sum(self.job(j)["status"] == "running" for j in self.accepted) == 2
                and redis.Redis.from_url(self.redis.url).llen("default") == 0
            ),
            30,
            what="2 running and 2 held",
        )

    def check_ledger(self, since: float, what: str) -> None:
        wait_for(
            lambda: all(self.job(j)["status"] in FINAL for j in self.accepted), 60, 0.2, what="all final"
        )
        took = time.monotonic() - since
        print(f"\n{what}: every one of {len(self.accepted)} jobs final {took:.2f} s after the fault")
        assert {j: self.job(j)["status"] for j in self.accepted} == dict.fromkeys(self.accepted, "succeeded")
        with get_engine(self.db_url).connect() as conn:
            ledger = conn.execute(text("SELECT job_id FROM fault_ledger")).scalars().all()
        assert sorted(ledger) == sorted(self.accepted)
        wait_for(lambda: self.client.get("/readyz").status_code == 200, 30, 0.5, what="/readyz 200 again")

    def close(self) -> None:
        for proc in self.workers:
            proc.stop(timeout_s=10)
        self.redis.stop()


@pytest.fixture
def ledger_stack(tmp_path: Path, sqlite_url: str) -> Iterator[LedgerStack]:
    stack = LedgerStack(tmp_path, sqlite_url)
    yield stack
    stack.close()


def test_sigkill_of_a_whole_worker_holding_running_and_prefetched_jobs(ledger_stack):
    stack = ledger_stack
    doomed = stack.worker("doomed", prefetch=2)
    stack.hold_four()
    stack.worker("steady", concurrency=4)
    doomed.send_signal(signal.SIGKILL)
    killed_at, killed_wall = time.monotonic(), time.time()
    stack.check_ledger(killed_at, "whole worker SIGKILLed")
    again = sorted(
        datetime.fromisoformat(stack.job(j)["started_at"]).timestamp() - killed_wall for j in stack.accepted
    )
    print(f"whole worker SIGKILLed: jobs ran again {', '.join(f'{s:.2f}' for s in again)} s after the kill")
    assert max(again) < RECOVERY_BOUND_S


def test_redis_restarted_empty_while_a_worker_runs_and_holds_jobs(ledger_stack):
    stack = ledger_stack
    stack.worker("holder", prefetch=2)
    stack.hold_four()
    stack.redis.stop()
    stack.redis.start()  # same port, no persistence: every queue, unacked entry and heartbeat is gone
    restarted_at = time.monotonic()
    stack.submit(steps=2)  # accepted after the restart
    stack.check_ledger(restarted_at, "Redis restarted empty")
