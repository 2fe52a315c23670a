"""A worker cut from Redis for 40 s while it runs and holds jobs: nothing lost, nothing completed twice.

The fallback for machines where network namespaces cannot be made (tests/faults/conftest.py says which
mode the suite runs in): the worker reaches Redis through a loopback TCP proxy the test cuts without
closing. Where namespaces can be made, test_netns_partitions.py runs this fault on namespaced hosts and
this test is skipped. Every job records its completed run in a
ledger table with a unique key; the test checks that every accepted job ends in exactly one final state,
that each ran to completion once, prints the recovery time, and wants /readyz back to 200 afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from questboard.testing import RedisServer, questboard_env, wait_for, wait_worker_ready, worker_process
from shared.accounts import Accounts
from shared.db import get_engine
from shared.settings import Settings
from tests.faults.conftest import namespaces_reason
from tests.faults.jobtypes import LEDGER_DDL
from tests.faults.proxy import LinkProxy

MODULES = "tests.faults.jobtypes"
CUT_S = 40.0
RECOVERY_BOUND_S = 15.0


@pytest.mark.skipif(
    namespaces_reason() is None,
    reason="network namespaces available: test_netns_partitions.py cuts a namespaced worker host instead",
)
def test_worker_cut_from_redis_for_40_s_loses_nothing_and_completes_each_job_once(
    tmp_path: Path, sqlite_url: str
):
    from web import create_app

    with get_engine(sqlite_url).begin() as conn:
        conn.execute(text(LEDGER_DDL))
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    redis.Redis.from_url(server.url).set("questboard:broker-epoch", f"test:{time.time() - 3600}")
    proxy = LinkProxy("127.0.0.1", server.port)
    cut_url = f"redis://127.0.0.1:{proxy.port}/0"
    workers = []
    try:
        cut = worker_process(
            questboard_env(cut_url, sqlite_url, tmp_path / "i", QUESTBOARD_JOB_MODULES=MODULES),
            tmp_path,
            queues="default",
            name="cut",
            extra_args=["--prefetch-multiplier", "2"],
        )
        workers.append(cut)
        cut.start()
        wait_worker_ready(cut, server.url)
        settings = Settings(
            redis_url=server.url,
            database_url=sqlite_url,
            instance_dir=tmp_path / "i",
            secret_key="x",
            job_modules=MODULES,
        )
        client = create_app(settings, TESTING=True).test_client()
        person = Accounts(sqlite_url).ensure_user("ledger@example.com")
        headers = {"Authorization": f"Bearer {Accounts(sqlite_url).issue_api_token(person)}"}
        accepted: list[str] = []

        def submit(steps: int) -> None:
            resp = client.post(
                "/api/jobs", json={"type": "fault.ledger", "params": {"steps": steps}}, headers=headers
            )
            assert resp.status_code == 202, resp.get_json()
            accepted.append(resp.get_json()["id"])

        def job(job_id: str) -> dict:
            return client.get(f"/api/jobs/{job_id}", headers=headers).get_json()

        for _ in range(4):
            submit(steps=20)  # 10 s each: two run on the cut worker, two wait in its prefetch
        wait_for(
            lambda: (
                sum(job(j)["status"] == "running" for j in accepted) == 2
                and redis.Redis.from_url(server.url).llen("default") == 0
            ),
            30,
            what="the cut worker running 2 jobs and holding 2",
        )
        held = [j for j in accepted if job(j)["status"] == "queued"]
        steady = worker_process(
            questboard_env(server.url, sqlite_url, tmp_path / "i", QUESTBOARD_JOB_MODULES=MODULES),
            tmp_path,
            queues="default",
            name="steady",
        )
        workers.append(steady)
        steady.start()
        wait_worker_ready(steady, server.url)
        proxy.cut()
        cut_at = time.monotonic()
        for _ in range(2):
            submit(steps=2)  # accepted during the cut, run by the steady worker
        wait_for(
            lambda: all(job(j)["status"] != "queued" for j in held), RECOVERY_BOUND_S, 0.1, what="held jobs"
        )
        took = time.monotonic() - cut_at
        print(f"\nworker cut from Redis: its 2 held jobs started elsewhere after {took:.2f} s")
        wait_for(lambda: time.monotonic() - cut_at >= CUT_S, CUT_S + 5, 0.5, what="the cut to last 40 s")
        proxy.heal()
        healed_at = time.monotonic()
        final = {"succeeded", "failed", "canceled"}
        wait_for(lambda: all(job(j)["status"] in final for j in accepted), 60, 0.2, what="every job final")
        took = time.monotonic() - healed_at
        print(f"worker cut from Redis: every job final {took:.2f} s after the link healed")
        assert {j: job(j)["status"] for j in accepted} == dict.fromkeys(accepted, "succeeded")
        with get_engine(sqlite_url).connect() as conn:
            ledger = conn.execute(text("SELECT job_id FROM fault_ledger")).scalars().all()
        assert sorted(ledger) == sorted(accepted)  # each completed once (the key is unique)
        wait_for(lambda: client.get("/readyz").status_code == 200, 30, 0.5, what="/readyz 200 again")
    finally:
        proxy.heal()
        for proc in workers:
            proc.stop(timeout_s=10)
        proxy.close()
        server.stop()
