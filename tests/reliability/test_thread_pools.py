"""Thread-pool workers (the default pool): cancel and time limits without a pool process to end.

A body that runs Python code is stopped in its thread; one stuck in a C call is ended by recycling its
worker process (exit code 75, which `questboard up` and Docker restart), after the worker gave back its
other jobs: a job running beside the stuck one is queued again and succeeds once, not lost and not run
twice at the same time. A ``pool="process"`` type runs only on a prefork worker.
"""

from __future__ import annotations

import time

from questboard.testing import wait_for
from shared import defaults
from shared.models import JobAttempt

CANCEL_WITHIN_S = 5  # contract §3
LIMIT_S = 2


def _outcomes(stack, job_id: str) -> list[str | None]:
    return [a.outcome for a in sorted(stack.attempts(job_id), key=lambda a: a.number)]


def _exit_code(proc, timeout_s: float) -> int:
    return wait_for(lambda: proc.proc.poll() is not None, timeout_s, 0.05, what="the worker to exit") and (
        proc.proc.returncode
    )


def test_cancel_of_a_cooperative_body_on_threads_ends_within_5_s_and_the_worker_serves_on(stack):
    worker = stack.start_worker(concurrency=4, name="coop")
    probe = stack.submit("diagnostics.probe", {"steps": 600, "step_ms": 100})
    stack.wait_status(probe, "running")
    asked = time.monotonic()
    stack.service.cancel(stack.user, probe)
    stack.wait_status(probe, "canceled", CANCEL_WITHIN_S)
    assert time.monotonic() - asked < CANCEL_WITHIN_S
    # A body that loops without progress points is stopped in its thread: the worker is not recycled.
    quiet = stack.submit("test.report_then_sleep", {"seconds": 60})
    running = stack.wait_status(quiet, "running")
    assert running.worker_pid == worker.pid  # a thread of the worker process itself
    stack.service.cancel(stack.user, quiet)
    stack.wait_status(quiet, "canceled", CANCEL_WITHIN_S)
    after = stack.submit("diagnostics.probe")
    assert stack.wait_status(after, "succeeded", 30).worker_pid == worker.pid
    assert worker.alive()


def test_cancel_of_a_body_stuck_in_c_recycles_the_worker_and_its_other_job_completes_once(stack):
    worker = stack.start_worker(concurrency=2, name="recycled")
    neighbour = stack.submit("test.until_released", {"seconds": 60})
    stack.wait_status(neighbour, "running")
    stuck = stack.submit("test.c_sleep_threads", {"seconds": 60})
    stack.wait_status(stuck, "running")
    asked = time.monotonic()
    stack.service.cancel(stack.user, stuck)
    stack.wait_status(stuck, "canceled", CANCEL_WITHIN_S)
    assert time.monotonic() - asked < CANCEL_WITHIN_S
    assert _exit_code(worker, CANCEL_WITHIN_S) == defaults.WORKER_RECYCLE_EXIT_CODE
    # The neighbour was given back before the exit: queued again, its interrupted attempt not counted.
    assert stack.job(neighbour).status == "queued"

    stack.start_worker(concurrency=2, name="recycled")  # what `questboard up` does on exit code 75
    stack.wait_status(neighbour, "running", 30)
    stack.redis.client().set("qb:test:release", "1")
    done = stack.wait_status(neighbour, "succeeded", 30)
    assert _outcomes(stack, neighbour).count("succeeded") == 1
    assert done.attempts == 1
    assert len([s for s in stack.starts() if s.startswith(neighbour)]) == 2  # started again, once
    assert stack.job(stuck).status == "canceled"  # the restarted worker did not run it again


def test_time_limit_on_threads_stops_python_code_in_its_thread_and_a_c_call_by_recycling(stack):
    stack.env["QUESTBOARD_TIME_LIMITS"] = f"test.report_then_sleep:{LIMIT_S},test.c_sleep_threads:{LIMIT_S}"
    worker = stack.start_worker(concurrency=2, name="limits")
    quiet = stack.submit("test.report_then_sleep", {"seconds": 60})
    stack.wait_status(quiet, "running")
    first = wait_for(
        lambda: [a for a in stack.attempts(quiet) if a.finished_at], 20, 0.1, what="the attempt to end"
    )[0]
    assert first.error_type == "TimeLimitExceeded"
    assert LIMIT_S <= (first.finished_at - first.started_at).total_seconds() < LIMIT_S + 5
    assert worker.alive()  # stopped in its thread

    stuck = stack.submit("test.c_sleep_threads", {"seconds": 60})
    stack.wait_status(stuck, "running")
    assert _exit_code(worker, LIMIT_S + 5) == defaults.WORKER_RECYCLE_EXIT_CODE
    attempt: JobAttempt = next(a for a in stack.attempts(stuck) if a.number == 1)
    assert attempt.error_type == "TimeLimitExceeded" and attempt.finished_at is not None
    assert stack.job(stuck).status in ("retrying", "queued", "failed")


def test_a_process_type_runs_only_on_a_prefork_worker(stack):
    threads = stack.start_worker(concurrency=2, name="threads")
    job_id = stack.submit("test.where")
    client = stack.redis.client()
    wait_for(lambda: client.llen("default.process") >= 1, 10, what="the message on default.process")
    assert stack.job(job_id).status == "queued" and client.llen("default") == 0
    probe = stack.submit("diagnostics.probe")  # the threads worker is serving all along
    stack.wait_status(probe, "succeeded", 30)
    assert stack.job(job_id).status == "queued"

    prefork = stack.start_worker(concurrency=1, name="procs", pool="process")
    done = stack.wait_status(job_id, "succeeded", 30)
    assert done.worker.startswith("procs@")
    assert done.result["parent"] == prefork.pid and done.result["pid"] != prefork.pid  # a pool process
    assert threads.alive()
