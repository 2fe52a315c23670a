"""Redis restarts and broker redeliveries: every job finishes, none runs its body twice."""

from __future__ import annotations

from collections import Counter

from questboard.testing import RedisServer, wait_for
from workers.celery_app import make_celery


def test_redis_restart_without_persistence_mid_run_loses_no_job(stack):
    stack.start_worker(concurrency=2, name="steady")
    ids = [stack.submit("diagnostics.probe", {"steps": 2, "step_ms": 50}) for _ in range(40)]
    wait_for(lambda: sum(j.status == "succeeded" for j in stack.jobs(ids)) >= 5, 60, what="some progress")
    port = stack.redis.port
    stack.redis.stop()  # appendonly off, no snapshot: every queued message is gone
    stack.redis = RedisServer(stack.redis.dir, port=port, appendonly=False).start()
    wait_for(lambda: all(j.status == "succeeded" for j in stack.jobs(ids)), 120, what="every job to finish")
    for job_id in ids:
        assert sum(a.outcome == "succeeded" for a in stack.attempts(job_id)) == 1


def test_jobs_submitted_while_redis_is_down_are_sent_when_it_is_back(stack):
    stack.start_worker(concurrency=1, name="patient")
    port = stack.redis.port
    stack.redis.stop()
    ids = [stack.submit("diagnostics.probe") for _ in range(3)]  # accepted: the row is the job
    assert all(j.status == "queued" and j.needs_dispatch for j in stack.jobs(ids))
    stack.redis = RedisServer(stack.redis.dir, port=port, appendonly=False).start()
    wait_for(lambda: all(j.status == "succeeded" for j in stack.jobs(ids)), 60, what="the jobs to run")


def test_a_message_delivered_twice_runs_the_body_once(stack):
    job_id = stack.submit("test.sleep", {"seconds": 0.2})
    make_celery(stack.settings).send_task("test.sleep", args=[job_id], queue="default", task_id=job_id)
    stack.start_worker(concurrency=2, name="dedup")
    done = stack.wait_status(job_id, "succeeded")
    wait_for(lambda: stack.redis.client().llen("default") == 0, 10, what="both messages consumed")
    assert done.attempts == 1
    assert stack.started_jobs() == [job_id]


def test_job_delayed_three_times_the_visibility_timeout_runs_exactly_once(make_stack):
    stack = make_stack(visibility_timeout_s=2)
    stack.start_worker(concurrency=2, name="delayed")
    job_id = stack.submit("test.sleep", {"seconds": 0.1}, delay_seconds=6)
    assert stack.job(job_id).status == "scheduled"
    done = stack.wait_status(job_id, "succeeded", 30)
    # Give a would-be redelivery (after 2 s of visibility timeout) time to show up, then count runs.
    long_job = stack.submit("test.sleep", {"seconds": 5})
    stack.wait_status(long_job, "succeeded", 30)
    assert done.attempts == 1
    assert Counter(stack.started_jobs()) == {job_id: 1, long_job: 1}
