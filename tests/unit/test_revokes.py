"""Celery revokes noted by the worker are applied to the job rows by its maintenance pass
(workers.revokes): one the database did not take is kept for the next pass, not dropped."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import OperationalError

from shared.accounts import Accounts
from shared.dispatch import NoDispatch
from shared.lifecycle import Lifecycle
from shared.publisher import NullPublisher
from tests.unit.jobstate_helpers import add_job, snapshot
from workers import revokes


def test_a_revoke_the_database_did_not_take_is_applied_on_the_next_pass(sqlite_url: str) -> None:
    lifecycle = Lifecycle(sqlite_url, NullPublisher(), NoDispatch(), group_commit=False)
    owner = Accounts(sqlite_url).ensure_user("revoked@example.com").id
    job_id = add_job(sqlite_url, owner, "queued")
    real, calls = lifecycle.revoke, []

    def flaky(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise OperationalError("UPDATE jobs ...", {}, Exception("database is locked"))
        return real(*args)

    lifecycle.revoke = flaky  # type: ignore[method-assign]
    revokes._pending.put((job_id, False, "revoke"))
    revokes.apply_pending(lifecycle)  # the database failed: the note is kept
    assert snapshot(sqlite_url, job_id)["status"] == "queued"
    revokes.apply_pending(lifecycle)
    assert len(calls) == 2
    assert snapshot(sqlite_url, job_id)["status"] == "canceled"
