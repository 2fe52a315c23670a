"""Progress reports are written behind (shared.progressbuffer): none lost, none left unwritten."""

from __future__ import annotations

from sqlalchemy import select

from questboard.testing import wait_for
from shared.defaults import PROGRESS_WRITE_EVERY_S as WRITE_EVERY_S
from shared.models import JobEvent


def running_progress(stack, job_id: str) -> list[int]:
    with stack.sessions() as session:
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
        return [e.progress for e in events if e.status == "running"]


def test_reports_held_between_writes_reach_the_database_while_the_body_still_works(stack):
    stack.start_worker(concurrency=1)
    job_id = stack.submit("test.report_then_sleep", {"seconds": 20})
    # 10, 20 and 30 % are reported within microseconds of the claim, so they are held, not written;
    # the flusher writes them once the interval has passed, while the body is still working.
    job = wait_for(
        lambda: (j := stack.job(job_id)).progress == 30 and j,
        5 + 4 * WRITE_EVERY_S,
        what="the held 30 % to be written",
    )
    assert job.status == "running" and job.message == "at 30"
    assert running_progress(stack, job_id) == [0, 10, 20, 30]  # every report, in order


def test_every_report_of_a_quick_job_is_kept_in_order(stack):
    stack.start_worker(concurrency=1)
    job_id = stack.submit("diagnostics.probe", {"steps": 50})
    job = stack.wait_status(job_id, "succeeded")
    assert job.progress == 100
    assert running_progress(stack, job_id) == [0] + [step * 2 for step in range(1, 51)]
    with stack.sessions() as session:
        statuses = [
            e.status
            for e in session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
        ]
    assert statuses[0] == "queued" and statuses[-1] == "succeeded"


def test_a_cancel_reaches_a_body_that_reports_between_writes(stack):
    stack.start_worker(concurrency=1)
    # 400 steps of 10 ms: reports every 10 ms, written at most every WRITE_EVERY_S.
    job_id = stack.submit("diagnostics.probe", {"steps": 400, "step_ms": 10})
    wait_for(lambda: stack.job(job_id).progress >= 5, 20, what="the probe to report progress")
    stack.service.cancel(stack.user, job_id)
    job = stack.wait_status(job_id, "canceled", 10)
    assert 0 < job.progress < 100
    attempts = stack.attempts(job_id)
    assert [a.outcome for a in attempts] == ["canceled"]  # stopped at a progress point, not killed
