"""A worker (Celery threads pool, 8 threads) SIGKILLed while its committer holds a group commit open.

Eight jobs wait before the worker starts, so its 8 threads claim them at once and the committer puts
the 8 claims in one transaction; a test-only hook (``QUESTBOARD_GROUP_COMMIT_TEST_HOLD``) makes it
wait inside that open transaction. While it waits, no body may start and every message must still be
unacknowledged: a committer that woke its waiters (and so let the task finish and ack) before the
commit would show starts here, and each job starting twice after the restart. Then the worker is
killed: the transaction never commits, the jobs are still ``queued``, and a worker started afterwards
runs each once — one start, one attempt, one ``running`` and one ``succeeded`` event per job.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from questboard.testing import wait_for
from shared.jobstate.committer import INTERVAL_ENV, MAX_STEPS_ENV, TEST_HOLD_ENV
from shared.models import JobAttempt, JobEvent
from tests.reliability.conftest import Stack

JOBS = 8
THREADS = ["-P", "threads"]
QUIET_WINDOW_S = 1.5  # how long the held commit is watched for a body that starts (bodies take 0.2 s)


@pytest.fixture
def gc_stack(tmp_path: Path, database_url: str):
    stack = Stack(tmp_path / "s", database_url)
    yield stack
    stack.close()


def test_sigkill_in_the_middle_of_a_group_commit_loses_nothing_and_runs_nothing_twice(gc_stack):
    stack = gc_stack
    ids = [stack.submit("test.sleep", {"seconds": 0.2}) for _ in range(JOBS)]
    marker = stack.tmp_path / "held.json"
    plain_env = stack.env
    stack.env = {
        **plain_env,
        TEST_HOLD_ENV: f"{JOBS}:{marker}",
        INTERVAL_ENV: "5.0",  # the batch waits for all 8 claims (it runs as soon as 8 are there)
        MAX_STEPS_ENV: str(JOBS),
    }
    doomed = stack.start_worker(queues="default", concurrency=JOBS, name="doomed", extra_args=THREADS)
    stack.env = plain_env
    wait_for(marker.exists, 30, 0.05, what="the committer holding a group commit open")
    held = json.loads(marker.read_text())
    assert sorted(m["job_id"] for m in held["moves"]) == sorted(ids)
    assert {m["what"] for m in held["moves"]} == {"claim"}

    redis = stack.redis.client()
    watch_until = time.monotonic() + QUIET_WINDOW_S
    while time.monotonic() < watch_until:
        assert stack.starts() == [], "a body started before its claim was committed"
        assert redis.hlen("unacked") == JOBS, "a message was acknowledged before its move was committed"
        assert {j.status for j in stack.jobs(ids)} == {"queued"}
        time.sleep(0.05)

    doomed.send_signal(signal.SIGKILL)
    wait_for(lambda: not doomed.alive(), 10, 0.05, what="the doomed worker gone")
    stack.start_worker(queues="default", concurrency=JOBS, name="rescuer", extra_args=THREADS)
    wait_for(
        lambda: {j.status for j in stack.jobs(ids)} == {"succeeded"}, 60, 0.2, what="every job succeeded"
    )

    started = stack.started_jobs()
    assert sorted(started) == sorted(ids), f"each body starts exactly once: {stack.starts()}"
    assert {entry.split(":")[1] for entry in stack.starts()} == {"1"}  # the held claims never counted
    with stack.sessions() as session:
        attempts = session.execute(
            select(JobAttempt.job_id, JobAttempt.number, JobAttempt.outcome).where(JobAttempt.job_id.in_(ids))
        ).all()
        events = session.execute(
            select(JobEvent.job_id, JobEvent.status, func.count())
            .where(JobEvent.job_id.in_(ids), JobEvent.status.in_(["running", "succeeded"]))
            .group_by(JobEvent.job_id, JobEvent.status)
        ).all()
    assert sorted(attempts) == sorted((j, 1, "succeeded") for j in ids)
    assert sorted(events) == sorted([(j, "running", 1) for j in ids] + [(j, "succeeded", 1) for j in ids])
