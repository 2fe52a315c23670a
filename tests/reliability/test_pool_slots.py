"""A pool keeps every slot after a canceled job's process was killed (both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from questboard.testing import wait_for
from shared.processes import pid_alive
from tests.reliability.conftest import Stack

ROUNDS = 3


@pytest.fixture
def db_stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    stack = Stack(tmp_path / "s", database_url)
    yield stack
    stack.close()


def test_after_a_kill_for_cancel_the_pool_still_runs_two_jobs_side_by_side(db_stack):
    stack = db_stack
    stack.start_worker(queues="default", concurrency=2, name="pool", pool="prefork")  # kills a pool process
    for round_ in range(ROUNDS):
        # One step of 60 s never reaches a progress point: the cancel is enforced by killing its process.
        stuck = stack.submit("diagnostics.probe", {"steps": 1, "step_ms": 60_000})
        running = stack.wait_status(stuck, "running", 20)
        stack.service.cancel(stack.user, stuck)
        stack.wait_status(stuck, "canceled", 10)
        wait_for(lambda pid=running.worker_pid: not pid_alive(pid), 10, what="the canceled job's process")
        pair = [stack.submit("test.sleep", {"seconds": 3}) for _ in range(2)]
        for job_id in pair:
            stack.wait_status(job_id, "succeeded", 30)
        first, second = sorted(stack.jobs(pair), key=lambda j: j.started_at)
        gap = (second.started_at - first.started_at).total_seconds()
        print(f"\nround {round_ + 1}: the two 3 s jobs started {gap:.2f} s apart")
        assert gap < 1.0, f"round {round_ + 1}: one after the other ({gap:.2f} s apart): the pool lost a slot"
