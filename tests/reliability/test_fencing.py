"""Fencing: a frozen worker whose job was recovered and re-run elsewhere changes nothing when it resumes."""

from __future__ import annotations

import signal

import redis
from sqlalchemy import func, select

from questboard.testing import wait_for
from shared.models import JobEvent
from tests.reliability.jobtypes import RELEASE_KEY


def _events(stack, job_id: str) -> int:
    with stack.sessions() as session:
        return session.scalar(select(func.count()).select_from(JobEvent).where(JobEvent.job_id == job_id))


def test_late_success_and_progress_of_a_recovered_attempt_are_refused(stack):
    client = redis.Redis.from_url(stack.redis.url, decode_responses=True)
    frozen = stack.start_worker(concurrency=2, name="frozen")
    quiet = stack.submit("test.until_attempt_released", {"seconds": 90})
    chatty = stack.submit("test.until_attempt_released", {"seconds": 90, "report": True})
    wait_for(
        lambda: all(
            j.status == "running" and j.worker.startswith("frozen@") for j in stack.jobs([quiet, chatty])
        ),
        30,
        what="both jobs running on the frozen worker",
    )
    wait_for(lambda: stack.job(chatty).progress == 10, 10, what="the first attempt's 10 %")
    stack.start_worker(concurrency=2, name="heir")
    frozen.send_signal(signal.SIGSTOP)  # a partition as the worker sees it: it simply stops for a while
    try:
        # Recovered (heartbeat expired) and running again on the heir, as its second attempt.
        wait_for(
            lambda: all(
                j.status == "running" and j.attempts == 2 and j.worker.startswith("heir@")
                for j in stack.jobs([quiet, chatty])
            ),
            40,
            what="both jobs to run again on the heir",
        )
        wait_for(lambda: stack.job(chatty).message == "attempt 2 started", 10, what="the second 10 %")
    finally:
        frozen.send_signal(signal.SIGCONT)
    before = {
        j.id: (j.status, j.attempts, j.worker, j.progress, j.message) for j in stack.jobs([quiet, chatty])
    }
    events_before = {job_id: _events(stack, job_id) for job_id in (quiet, chatty)}
    client.set(f"{RELEASE_KEY}:1", "1")  # the first attempts finish now: late progress and late success
    frozen.terminate()  # warm shutdown: it ends once its two bodies returned and their writes were tried
    assert frozen.proc.wait(timeout=30) == 0
    after = {
        j.id: (j.status, j.attempts, j.worker, j.progress, j.message) for j in stack.jobs([quiet, chatty])
    }
    assert after == before
    assert {job_id: _events(stack, job_id) for job_id in (quiet, chatty)} == events_before
    client.set(f"{RELEASE_KEY}:2", "1")
    for job_id in (quiet, chatty):
        done = stack.wait_status(job_id, "succeeded", 20)
        assert done.result == {"attempt": 2} and done.attempts == 2 and done.worker.startswith("heir@")
        outcomes = sorted((a.number, a.outcome, a.worker.split("@")[0]) for a in stack.attempts(job_id))
        assert outcomes == [(1, "lost", "frozen"), (2, "succeeded", "heir")]
