"""Killed workers, killed pool processes, self-killing jobs, SIGTERM: nothing is lost or run twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections import Counter

import pytest

from questboard.cli import worker_argv
from questboard.testing import ManagedProcess, wait_for, wait_worker_ready
from shared import defaults
from shared.processes import pid_alive


def _succeeded_attempts(stack, job_id: str) -> int:
    return sum(1 for a in stack.attempts(job_id) if a.outcome == "succeeded")


def test_sigkill_of_a_worker_with_100_jobs_in_flight_loses_none_and_runs_each_once(stack):
    doomed = stack.start_worker(concurrency=2, name="doomed")
    ids = [stack.submit("diagnostics.probe", {"steps": 2, "step_ms": 25}) for _ in range(100)]
    wait_for(lambda: sum(j.status == "succeeded" for j in stack.jobs(ids)) >= 10, 60, what="some progress")
    doomed.kill()  # SIGKILL to the whole process group: main process and pool children
    stack.start_worker(concurrency=2, name="rescuer")
    wait_for(lambda: all(j.status == "succeeded" for j in stack.jobs(ids)), 120, what="all 100 succeeded")
    assert all(_succeeded_attempts(stack, job_id) == 1 for job_id in ids)
    assert Counter(j.status for j in stack.jobs(ids)) == {"succeeded": 100}


def test_killed_worker_job_runs_again_on_another_worker(stack):
    first = stack.start_worker(concurrency=1, name="first")
    job_id = stack.submit("test.sleep", {"seconds": 30})
    stack.wait_status(job_id, "running")
    stack.start_worker(concurrency=1, name="second")
    first.kill()
    # Recovered once the dead worker's heartbeat expires (seconds, not Celery's visibility timeout).
    wait_for(lambda: len(stack.starts()) == 2, 30, what="the job to start again")
    job = stack.job(job_id)
    assert job.status == "running" and job.attempts == 2 and job.worker.startswith("second@")
    lost = [a for a in stack.attempts(job_id) if a.number == 1][0]
    assert lost.outcome == "lost" and lost.error_type == "WorkerLost"


def test_killed_pool_process_job_is_requeued_and_succeeds(stack):
    stack.start_worker(
        concurrency=1, name="pool", pool="prefork"
    )  # a pool process of its own (threads: tests/reliability/test_thread_pools.py)
    job_id = stack.submit("test.sleep", {"seconds": 3})
    running = stack.wait_status(job_id, "running")
    os.kill(running.worker_pid, signal.SIGKILL)
    done = stack.wait_status(job_id, "succeeded", 30)
    assert done.attempts == 2
    assert [a.outcome for a in sorted(stack.attempts(job_id), key=lambda a: a.number)] == [
        "lost",
        "succeeded",
    ]


def test_a_job_that_kills_its_worker_every_time_ends_failed(stack):
    stack.start_worker(
        concurrency=1, name="victim", pool="prefork"
    )  # a pool process of its own (threads: tests/reliability/test_thread_pools.py)
    job_id = stack.submit("test.crash")
    failed = stack.wait_status(job_id, "failed", 60)
    assert failed.attempts == failed.max_attempts == 3
    assert failed.error == {"type": "WorkerLost", "message": "worker process lost"}
    assert len(stack.starts()) == 3  # it did not loop


def test_sigterm_lets_the_running_job_finish(stack):
    worker = stack.start_worker(concurrency=1, name="graceful")
    job_id = stack.submit("test.sleep", {"seconds": 2})
    stack.wait_status(job_id, "running")
    worker.terminate()  # SIGTERM to the main process, as a supervisor does: warm shutdown
    assert worker.proc.wait(timeout=30) == 0
    job = stack.job(job_id)
    assert job.status == "succeeded" and job.attempts == 1


def test_cancel_of_a_running_job_stops_it_within_5_seconds(stack):
    stack.start_worker(
        concurrency=1, name="canceler", pool="prefork"
    )  # a pool process of its own (threads: tests/reliability/test_thread_pools.py)
    # Cooperative: a probe reaches a progress point every 100 ms.
    probe = stack.submit("diagnostics.probe", {"steps": 600, "step_ms": 100})
    stack.wait_status(probe, "running")
    stack.service.cancel(stack.user, probe)
    assert stack.wait_status(probe, "canceled", 5).finished_at is not None
    # Not cooperative: one step of 60 s never reaches a progress point; its process is ended.
    stuck = stack.submit("diagnostics.probe", {"steps": 1, "step_ms": 60_000})
    running = stack.wait_status(stuck, "running", 20)
    stack.service.cancel(stack.user, stuck)
    stack.wait_status(stuck, "canceled", 5)
    wait_for(lambda: not pid_alive(running.worker_pid), 5, what="the pool process to end")
    # The worker goes on taking jobs with a fresh pool process.
    after = stack.submit("diagnostics.probe")
    stack.wait_status(after, "succeeded", 30)


def test_sigterm_to_the_whole_process_group_requeues_the_job_and_another_worker_runs_it(stack):
    worker = stack.start_worker(
        concurrency=1, name="grouped", pool="prefork"
    )  # its pool processes take the SIGTERM too
    job_id = stack.submit("test.sleep", {"seconds": 3})
    stack.wait_status(job_id, "running")
    stack.start_worker(concurrency=1, name="heir")
    worker.send_signal(signal.SIGTERM)  # like systemd's default KillMode: every process of the group
    worker.proc.wait(timeout=30)
    done = stack.wait_status(job_id, "succeeded", 40)
    assert done.worker.startswith("heir@")


def _worker_as_pid_1(stack, name: str) -> ManagedProcess:
    """A thread-pool worker that is PID 1 of a pid namespace of its own, as in a container."""
    argv = ["unshare", "--pid", "--fork", "--kill-child", *worker_argv("critical,high,default,low", 2, name)]
    proc = ManagedProcess(f"worker-{name}", argv, stack.env, stack.tmp_path)  # log appended: one file
    stack.workers.append(proc)
    proc.start()
    wait_worker_ready(proc, stack.redis.url)
    return proc


def _last_heartbeat(stack, name: str) -> float:
    """When the worker named ``name`` last wrote its heartbeat (0: none there)."""
    client = stack.redis.client()
    for key in client.scan_iter(match=f"{defaults.WORKER_KEY_PREFIX}{name}@*"):
        beat = client.get(key)
        if beat:
            return float(json.loads(beat)["last_heartbeat"])
    return 0.0


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare")
def test_a_worker_restarted_with_its_old_pid_recovers_the_jobs_it_ran(stack):
    """In a container the worker is PID 1, and the restarted container's worker is PID 1 again, under the
    same name: the running job of the one that died pointed at a live pid (the new worker itself), so it
    stayed ``running`` until its time limit. The new worker runs no such job, and recovers it."""
    first = _worker_as_pid_1(stack, "boxed")
    job_id = stack.submit("test.sleep", {"seconds": 60})
    assert stack.wait_status(job_id, "running").worker_pid == 1
    first.kill()
    killed_at = time.time()
    second = _worker_as_pid_1(stack, "boxed")  # ready at once: the dead one's heartbeat is still there
    wait_for(lambda: _last_heartbeat(stack, "boxed") > killed_at, 60, what="the new worker's own heartbeat")
    try:
        wait_for(lambda: len(stack.starts()) == 2, 30, what="the job to start again")
    except TimeoutError as exc:  # what the new worker did, for the report
        raise AssertionError(
            f"{exc}; job {stack.job(job_id).status}; worker log:\n{second.output()[-4000:]}"
        ) from exc
    job = stack.job(job_id)
    assert job.status == "running" and job.attempts == 2 and job.worker_pid == 1
    lost = [a for a in stack.attempts(job_id) if a.number == 1][0]
    assert lost.outcome == "lost" and lost.error_type == "WorkerLost"
