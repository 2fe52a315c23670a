"""Why is it waiting? (issue #20): with real workers, each reason a job can wait for is what
``GET /api/jobs/<id>`` says (through the job service the API calls): scheduled, retrying, a paused queue,
a full concurrency key, a rate limit, and the jobs queued ahead of it."""

from __future__ import annotations

from datetime import UTC, datetime

from questboard.testing import wait_for
from shared.queues import QueueControl
from tests.reliability.jobtypes import RELEASE_KEY


def reason_of(stack, job_id: str) -> dict | None:
    return stack.service.get(stack.user, job_id)["waiting_reason"]


def until(reason: dict) -> datetime:
    assert reason["until"] is not None, reason
    return datetime.fromisoformat(reason["until"])


def test_a_scheduled_job_waits_for_its_time_and_a_running_one_for_nothing(stack):
    stack.start_worker(concurrency=1)
    later = stack.submit("diagnostics.probe", delay_seconds=600)
    reason = reason_of(stack, later)
    assert reason["code"] == "scheduled" and until(reason) > datetime.now(UTC)
    assert reason["until"] == stack.service.get(stack.user, later)["scheduled_at"]
    running = stack.submit("test.until_released", {"seconds": 30})
    stack.wait_status(running, "running")
    assert reason_of(stack, running) is None
    stack.redis.client().set(RELEASE_KEY, 1)
    stack.wait_status(running, "succeeded")
    assert reason_of(stack, running) is None


def test_a_retrying_job_says_when_its_next_attempt_starts(stack):
    stack.start_worker(concurrency=1)
    job_id = stack.submit("diagnostics.probe", {"fail_first_attempts": 1})
    retrying = wait_for(
        lambda: (j := stack.service.get(stack.user, job_id))["status"] == "retrying" and j,
        20,
        0.02,
        what="the job to be retrying",
    )
    reason = retrying["waiting_reason"]
    assert reason["code"] == "retrying" and "Attempt 1 of 3" in reason["message"], reason
    assert reason["until"] == retrying["scheduled_at"]
    assert stack.wait_status(job_id, "succeeded").attempts == 2


def test_jobs_of_a_paused_queue_say_the_queue_is_paused(stack):
    QueueControl(stack.db_url).set_paused("low", True, "test")
    stack.start_worker(concurrency=1)  # started paused: it takes nothing from low until resumed
    job_id = stack.submit("diagnostics.probe", queue="low")
    reason = reason_of(stack, job_id)
    assert reason["code"] == "queue_paused" and "low" in reason["message"], reason
    assert stack.job(job_id).status == "queued"
    QueueControl(stack.db_url).set_paused("low", False, "test")
    stack.wait_status(job_id, "succeeded", 20)
    assert reason_of(stack, job_id) is None


def test_a_blocked_job_names_its_concurrency_key_and_how_full_it_is(stack):
    stack.start_worker(concurrency=2)
    ids = [stack.submit("test.exclusive", {"seconds": 30, "key": "a"}) for _ in range(2)]
    # Either may win the key's one slot; the other is blocked.

    def one_blocked() -> str | None:
        jobs = {j.status: j.id for j in stack.jobs(ids)}
        return jobs["blocked"] if set(jobs) == {"blocked", "running"} else None

    blocked = wait_for(one_blocked, 30, what="one job running and the other blocked")
    reason = reason_of(stack, blocked)
    assert reason["code"] == "concurrency", reason
    assert "exclusive:a" in reason["message"] and "1/1 running" in reason["message"], reason


def test_a_rate_limited_job_says_until_when(stack):
    stack.start_worker(concurrency=2)
    ids = [stack.submit("test.limited", {"seconds": 0.01}) for _ in range(14)]
    limited = wait_for(
        lambda: next(
            (j for j in stack.jobs(ids) if "Rate-limited" in j.message and j.status == "queued"), None
        ),
        20,
        0.02,
        what="a rate-limited job",
    )
    reason = reason_of(stack, limited.id)
    assert reason["code"] == "rate_limited" and "10 per 5 seconds" in reason["message"], reason
    assert until(reason) > datetime.now(UTC)


def test_a_queued_job_counts_the_jobs_ahead_of_it_in_its_queue(stack):
    stack.start_worker(concurrency=1)
    busy = stack.submit("test.until_released", {"seconds": 30})
    stack.wait_status(busy, "running")
    waiting = [stack.submit("diagnostics.probe") for _ in range(3)]
    reasons = [reason_of(stack, job_id) for job_id in waiting]
    assert [r["code"] for r in reasons] == ["queued"] * 3, reasons
    assert "next to start" in reasons[0]["message"]
    assert "1 job ahead" in reasons[1]["message"] and "2 jobs ahead" in reasons[2]["message"], reasons
    assert all("default" in r["message"] for r in reasons)
    stack.redis.client().set(RELEASE_KEY, 1)
    for job_id in waiting:
        stack.wait_status(job_id, "succeeded", 20)
