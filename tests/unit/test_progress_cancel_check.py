"""A report held between writes (shared.progressbuffer) reads whether a cancel was asked only once
``CANCEL_CHECK_EVERY_S`` has passed since the database last said: a quick job's only report, moments
after its claim, asks the database nothing (it used to cost a SELECT per job), and a cancel asked later
still stops the body at a report soon after."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from questboard.testing import wait_for
from shared.accounts import Accounts
from shared.dispatch import NoDispatch
from shared.lifecycle import Lifecycle
from shared.models import utcnow
from shared.publisher import NullPublisher
from tests.unit.jobstate_helpers import add_job, snapshot


def test_a_report_moments_after_the_claim_reads_nothing_and_a_later_cancel_still_stops_the_body(
    sqlite_url: str,
) -> None:
    lifecycle = Lifecycle(sqlite_url, NullPublisher(), NoDispatch())
    owner = Accounts(sqlite_url).ensure_user("progress@example.com").id
    job_id = add_job(sqlite_url, owner, "queued")
    reads: list[str] = []

    @event.listens_for(lifecycle.machine.engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "cancel_requested" in statement:
            reads.append(statement)

    assert lifecycle.claim(job_id, "w1", 101, utcnow()) is not None
    assert lifecycle.progress(job_id, 10, "ten") is False
    assert reads == []  # the claim, moments ago, said no cancel was asked

    lifecycle.request_cancel(job_id)
    wait_for(lambda: lifecycle.progress(job_id, 20, "twenty"), 10, 0.01, what="a report to stop the body")
    assert snapshot(sqlite_url, job_id)["status"] == "running"  # stopped by the body, at its report
    event.remove(lifecycle.machine.engine, "before_cursor_execute", _count)
