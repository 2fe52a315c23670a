"""A bare worker (no supervisor to start it again) outlives Redis restarts while it holds jobs.

The worker runs 2 jobs and, having a free slot, waits in BRPOP for a third when Redis goes away: the
consumer then closes a channel that still holds unacknowledged messages while its poll connection is dead
(workers/broker.py). The same worker process must reconnect, keep its running jobs, take new ones, and
every accepted job must end ``succeeded`` with exactly one completed run in the ledger.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from questboard.testing import ManagedProcess, wait_for
from tests.faults.test_crash_ledger import RECOVERY_BOUND_S, LedgerStack

RESTARTS = 2


def _polling_while_holding(stack: LedgerStack, holding: int) -> bool:
    """``holding`` jobs run, the queue is empty and a client of the worker is blocked in BRPOP."""
    client = stack.redis.client()
    try:
        blocked = any("b" in entry["flags"] for entry in client.client_list())
        running = sum(stack.job(j)["status"] == "running" for j in stack.accepted)
        return blocked and running == holding and client.llen("default") == 0
    finally:
        client.close()


def _restart_redis_under(stack: LedgerStack, worker: ManagedProcess, label: str) -> None:
    """Restart Redis while ``worker`` runs 2 jobs and polls for more; then the ledger must hold."""
    for _ in range(2):
        stack.submit(steps=8)  # 4 s each
    wait_for(lambda: _polling_while_holding(stack, 2), 30, 0.1, what="2 running, polling for more")
    stack.redis.stop()
    stack.redis.start()  # same port
    restarted_at = time.monotonic()
    stack.submit(steps=2)  # accepted after the restart: only a consuming worker can start it
    late = stack.accepted[-1]
    wait_for(
        lambda: not worker.alive() or stack.job(late)["status"] != "queued",
        RECOVERY_BOUND_S,
        0.1,
        what="the job submitted after the restart to start",
    )
    assert worker.alive(), f"the worker exited:\n{worker.output()[-3000:]}"
    stack.check_ledger(restarted_at, label)


@pytest.mark.parametrize("appendonly", [False, True], ids=["empty", "persisted"])
def test_a_bare_worker_polling_for_more_survives_redis_restarts(tmp_path: Path, sqlite_url: str, appendonly):
    stack = LedgerStack(tmp_path, sqlite_url, appendonly=appendonly)
    try:
        worker = stack.worker("survivor", concurrency=3)  # prefetch 3: with 2 running it asks for more
        pid = worker.pid
        for restart in range(1, RESTARTS + 1):
            _restart_redis_under(
                stack, worker, f"Redis restart {restart} ({'AOF' if appendonly else 'empty'})"
            )
        assert worker.alive() and worker.pid == pid, "the worker process did not survive"
        assert "Unrecoverable error" not in worker.output()
    finally:
        stack.close()
