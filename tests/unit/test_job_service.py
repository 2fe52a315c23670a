"""The job service against a real database (SQLite and PostgreSQL): submit, limits, claim, transitions."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from questboard.app import registry
from questboard.testing import wait_for
from shared.accounts import Accounts
from shared.errors import Conflict, InvalidRequest, LimitReached, NotFound, PermanentError, TransientError
from shared.jobs import JobService
from shared.lifecycle import Lifecycle
from shared.models import utcnow
from shared.publisher import NullPublisher
from workers.jobs.probe import JOB as PROBE


class RecordingDispatcher:
    """Records what would be sent to the broker (the broker itself is covered by integration tests)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def send(self, job_id: str, job_type: str, queue: str) -> None:
        with self._lock:
            self.sent.append((job_id, job_type, queue))


@pytest.fixture
def parts(database_url: str):
    dispatcher = RecordingDispatcher()
    service = JobService(database_url, registry(), NullPublisher(), dispatcher, user_job_limit=10)
    lifecycle = Lifecycle(database_url, NullPublisher(), dispatcher)
    accounts = Accounts(database_url)
    return service, lifecycle, dispatcher, accounts


def test_submit_commits_then_dispatches(parts):
    service, _, dispatcher, accounts = parts
    user = accounts.ensure_user("a@example.com")
    job, created = service.submit(user, "diagnostics.probe", {"steps": 2})
    assert created and job["status"] == "queued" and job["queue"] == "default"
    assert dispatcher.sent == [(job["id"], "diagnostics.probe", "default")]
    assert service.get(user, job["id"])["params"] == {
        "steps": 2,
        "step_ms": 0,
        "fail_first_attempts": 0,
        "fail_always": False,
    }


def test_invalid_params_and_unknown_types_are_refused_with_fields(parts):
    service, _, dispatcher, accounts = parts
    user = accounts.ensure_user("a@example.com")
    with pytest.raises(InvalidRequest) as err:
        service.submit(user, "diagnostics.probe", {"steps": 0})
    assert "params.steps" in err.value.fields
    with pytest.raises(InvalidRequest) as err:
        service.submit(user, "no.such.type", {})
    assert "type" in err.value.fields
    assert dispatcher.sent == []


def test_the_eleventh_active_job_is_refused(parts):
    service, _, dispatcher, accounts = parts
    user = accounts.ensure_user("a@example.com")
    for _ in range(10):
        service.submit(user, "diagnostics.probe", {})
    with pytest.raises(LimitReached) as err:
        service.submit(user, "diagnostics.probe", {})
    assert err.value.retry_after_s > 0 and "10" in err.value.message
    assert len(dispatcher.sent) == 10
    # Another user is not affected.
    other = accounts.ensure_user("b@example.com")
    assert service.submit(other, "diagnostics.probe", {})[1]


def test_concurrent_submissions_never_exceed_the_limit(parts, database_url):
    service, _, dispatcher, accounts = parts
    user = accounts.ensure_user("racer@example.com")
    outcomes: list[str] = []
    barrier = threading.Barrier(16)

    def submit() -> None:
        # A service per thread, as separate web processes would have.
        mine = JobService(database_url, registry(), NullPublisher(), dispatcher, user_job_limit=10)
        barrier.wait()
        try:
            mine.submit(user, "diagnostics.probe", {})
            outcomes.append("ok")
        except LimitReached:
            outcomes.append("refused")

    threads = [threading.Thread(target=submit) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 10 and outcomes.count("refused") == 6
    assert service.active_count(user) == 10


def test_idempotency_key_returns_the_first_job(parts):
    service, _, dispatcher, accounts = parts
    user = accounts.ensure_user("a@example.com")
    first, created = service.submit(user, "diagnostics.probe", {}, idempotency_key="k1")
    again, created_again = service.submit(user, "diagnostics.probe", {"steps": 5}, idempotency_key="k1")
    assert created and not created_again and again["id"] == first["id"]
    assert len(dispatcher.sent) == 1


def test_claim_is_atomic_and_runs_once(parts):
    service, lifecycle, _, accounts = parts
    user = accounts.ensure_user("a@example.com")
    job, _ = service.submit(user, "diagnostics.probe", {})
    assert lifecycle.claim(job["id"], "w1") is not None
    assert lifecycle.claim(job["id"], "w2") is None  # a second delivery of the same message
    assert service.get(user, job["id"])["attempts"] == 1


def test_retry_then_release_then_fail_after_max_attempts(parts):
    service, lifecycle, dispatcher, accounts = parts
    user = accounts.ensure_user("a@example.com")
    job, _ = service.submit(user, "diagnostics.probe", {"fail_always": True})
    for attempt in range(1, PROBE.retry.max_attempts + 1):
        claimed = lifecycle.claim(job["id"], "w1")
        assert claimed is not None and claimed.attempts == attempt
        after = lifecycle.fail_attempt(job["id"], attempt, TransientError("boom"), PROBE.retry)
        if attempt < PROBE.retry.max_attempts:
            assert after.status == "retrying" and after.scheduled_at > utcnow() - timedelta(seconds=1)
            assert lifecycle.release_due(now=after.scheduled_at + timedelta(seconds=1)) == 1
        else:
            assert after.status == "failed"
    final = service.get(user, job["id"])
    assert final["status"] == "failed" and final["error"] == {"type": "TransientError", "message": "boom"}
    assert final["finished_at"] is not None


def test_cancel_rules(parts):
    service, lifecycle, _, accounts = parts
    user = accounts.ensure_user("a@example.com")
    queued, _ = service.submit(user, "diagnostics.probe", {})
    assert service.cancel(user, queued["id"])["status"] == "canceled"
    assert lifecycle.claim(queued["id"], "w1") is None  # a canceled job never starts
    with pytest.raises(Conflict):
        service.cancel(user, queued["id"])
    running, _ = service.submit(user, "diagnostics.probe", {})
    lifecycle.claim(running["id"], "w1")
    assert service.cancel(user, running["id"])["status"] == "running"
    # The body is told to stop at a report (one at least CANCEL_CHECK_EVERY_S after its claim said no).
    wait_for(lambda: lifecycle.progress(running["id"], 50, "half"), 10, 0.02, what="the body told to stop")
    # ... and stops: the job ends canceled, with the held report written in the same commit (nothing
    # is left for this process's progress flusher to write after the test's database is gone)
    assert lifecycle.mark_canceled(running["id"], 1).status == "canceled"
    assert service.get(user, running["id"])["progress"] == 50


@pytest.mark.parametrize("ending", ["cancel", "retry", "fail", "requeue"])
def test_a_job_that_stops_right_after_a_report_keeps_its_percentage(parts, ending):
    """A report made within the write interval is held, then written with the job's next move: the
    move that ends the attempt keeps its percentage (it was written as an event only: a job canceled or
    failed at 75% showed 0% after a refresh, and 75% had the report come a little earlier)."""
    service, lifecycle, _, accounts = parts
    user = accounts.ensure_user("a@example.com")
    job, _ = service.submit(user, "diagnostics.probe", {})
    lifecycle.claim(job["id"], "w1")
    assert lifecycle.progress(job["id"], 75, "three quarters") is False
    moves = {
        "cancel": lambda: lifecycle.mark_canceled(job["id"], 1),
        "retry": lambda: lifecycle.fail_attempt(job["id"], 1, TransientError("boom"), PROBE.retry),
        "fail": lambda: lifecycle.fail_attempt(job["id"], 1, PermanentError("bad"), PROBE.retry),
        "requeue": lambda: lifecycle.requeue(job["id"], 1, "worker stopping"),
    }
    row = moves[ending]()
    assert (row.status, row.progress) == (
        {"cancel": "canceled", "retry": "retrying", "fail": "failed", "requeue": "queued"}[ending],
        75,
    )
    assert service.get(user, job["id"])["progress"] == 75


def test_other_users_jobs_are_not_found_but_admins_see_them(parts):
    service, _, _, accounts = parts
    alice = accounts.ensure_user("alice@example.com")
    bob = accounts.ensure_user("bob@example.com")
    ops = accounts.ensure_user("ops@example.com", admin=True)
    job, _ = service.submit(alice, "diagnostics.probe", {})
    with pytest.raises(NotFound):
        service.get(bob, job["id"])
    with pytest.raises(NotFound):
        service.cancel(bob, job["id"])
    assert service.get(ops, job["id"])["id"] == job["id"]


def test_scheduled_jobs_wait_in_the_database_until_due(parts):
    service, lifecycle, dispatcher, accounts = parts
    user = accounts.ensure_user("a@example.com")
    job, _ = service.submit(user, "diagnostics.probe", {}, delay_seconds=60)
    assert job["status"] == "scheduled" and dispatcher.sent == []
    assert lifecycle.release_due() == 0
    assert lifecycle.release_due(now=utcnow() + timedelta(seconds=61)) == 1
    assert dispatcher.sent == [(job["id"], "diagnostics.probe", "default")]


def test_listing_pages_newest_first_with_a_cursor(parts):
    service, _, _, accounts = parts
    user = accounts.ensure_user("a@example.com")
    ids = [service.submit(user, "diagnostics.probe", {})[0]["id"] for _ in range(5)]
    page1, cursor = service.list(user, limit=3)
    page2, end = service.list(user, limit=3, cursor=cursor)
    assert [j["id"] for j in page1 + page2] == list(reversed(ids))
    assert end is None


def test_unique_jobs_are_shared_by_their_owner_and_never_block_another_owner(parts):
    service, _, dispatcher, accounts = parts
    alice = accounts.ensure_user("alice@example.com")
    bob = accounts.ensure_user("bob@example.com")
    # content.index is internal: the system's path submits it for its owners.
    first, created = service.submit(alice, "content.index", {"character_id": "c1"}, system=True)
    again, created_again = service.submit(alice, "content.index", {"character_id": "c1"}, system=True)
    assert created and not created_again and again["id"] == first["id"]
    # Unique per owner: Bob's job for the same key is his own, and Alice's is not shown to him.
    bobs, bob_created = service.submit(bob, "content.index", {"character_id": "c1"}, system=True)
    assert bob_created and bobs["id"] != first["id"]
    assert len(dispatcher.sent) == 2
