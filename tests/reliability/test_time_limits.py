"""Every attempt has a time limit (contract §9): a real worker stops an attempt that runs past it within
5 s, records it as a failed attempt ``TimeLimitExceeded`` and retries or fails it by the type's policy.

Both ways an attempt can be stuck are measured: Python code (Celery's soft limit raises in the body) and
a C call that ignores every signal handler (Celery's hard limit ends the pool process; the worker's main
process records the attempt). The pool keeps serving afterwards.
"""

from __future__ import annotations

import time

from questboard.testing import wait_for
from shared.processes import pid_alive

LIMIT_S = 3
STOP_WITHIN_S = 8  # the limit plus the contract's 5 s


def attempts_done(stack, job_id: str, n: int) -> list:
    rows = sorted(stack.attempts(job_id), key=lambda a: a.number)
    return rows if len(rows) >= n and all(a.finished_at for a in rows[:n]) and rows else []


def test_a_body_stuck_in_a_c_call_is_stopped_at_its_limit_and_the_pool_keeps_serving(stack):
    stack.env["QUESTBOARD_TIME_LIMITS"] = f"test.c_sleep:{LIMIT_S}"
    stack.start_worker(concurrency=1, pool="prefork")  # a process type (threads: test_thread_pools.py)
    job_id = stack.submit("test.c_sleep", {"seconds": 10})
    running = stack.wait_status(job_id, "running", 20)
    seen_running = time.monotonic()
    first_pid = running.worker_pid

    first = wait_for(lambda: attempts_done(stack, job_id, 1), 20, 0.1, what="the first attempt to end")[0]
    stopped_after = time.monotonic() - seen_running
    duration = (first.finished_at - first.started_at).total_seconds()
    assert LIMIT_S <= duration < STOP_WITHIN_S and stopped_after < STOP_WITHIN_S, (duration, stopped_after)
    assert first.error_type == "TimeLimitExceeded" and f"{LIMIT_S} s" in first.error_message
    assert not pid_alive(first_pid)  # the C call never returned: its pool process was ended

    # The policy (2 attempts) retries it once, then it fails the same way.
    failed = stack.wait_status(job_id, "failed", 30)
    assert failed.attempts == 2 and failed.error["type"] == "TimeLimitExceeded"
    attempts = sorted(stack.attempts(job_id), key=lambda a: a.number)
    assert [a.error_type for a in attempts] == ["TimeLimitExceeded"] * 2
    assert all((a.finished_at - a.started_at).total_seconds() < STOP_WITHIN_S for a in attempts)
    assert len({entry.split(":")[2] for entry in stack.starts()}) == 2  # each attempt in its own process

    # The same single-process pool serves the next job.
    after = stack.submit("test.sleep", {"seconds": 0})
    assert stack.wait_status(after, "succeeded", 20).attempts == 1


def test_a_ten_second_probe_with_a_three_second_limit_is_stopped_and_retried_by_its_policy(stack):
    stack.env["QUESTBOARD_TIME_LIMITS"] = f"diagnostics.probe:{LIMIT_S}"
    stack.start_worker(concurrency=1)
    job_id = stack.submit("diagnostics.probe", {"steps": 10, "step_ms": 1000})
    running = stack.wait_status(job_id, "running", 20)
    first = wait_for(lambda: attempts_done(stack, job_id, 1), 20, 0.1, what="the first attempt to end")[0]
    duration = (first.finished_at - first.started_at).total_seconds()
    assert LIMIT_S <= duration < STOP_WITHIN_S, duration
    assert first.error_type == "TimeLimitExceeded" and "SoftTimeLimitExceeded" in (first.traceback or "")
    assert pid_alive(running.worker_pid)  # Python code stops at the soft limit: the process lives on

    failed = stack.wait_status(job_id, "failed", 40)  # diagnostics.probe: 3 attempts
    assert failed.attempts == 3 and failed.error["type"] == "TimeLimitExceeded"
    assert failed.progress < 100
    quick = stack.submit("diagnostics.probe", {"steps": 2, "step_ms": 100})
    assert stack.wait_status(quick, "succeeded", 20).attempts == 1
