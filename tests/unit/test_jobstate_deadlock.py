"""PostgreSQL ends one of two transactions that wait for each other's rows (a deadlock) and rolls it
back whole. When that one is the state machine's — a group commit of several jobs' moves, or a direct
commit — nothing of it was stored, so the machine runs it again instead of handing every waiter the
error: a job's success lost that way left the job ``running`` after its body had finished (and a later
recovery ran the body again)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from shared.accounts import Accounts
from shared.db import get_engine
from shared.dispatch import NoDispatch
from shared.jobstate import Machine, steps
from shared.jobstate.committer import Committer
from shared.publisher import NullPublisher
from tests.unit.jobstate_helpers import add_job, broken_invariants, snapshot

pytestmark = pytest.mark.postgres


@pytest.fixture
def machine(postgres_url: str) -> Iterator[Machine]:
    machine = Machine(postgres_url, NullPublisher(), NoDispatch())
    yield machine
    machine.engine.dispose()


@pytest.fixture
def owner(postgres_url: str) -> int:
    return Accounts(postgres_url).ensure_user("deadlock@example.com").id


def wait_for(check: Callable[[], bool], what: str, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def lock_waiters(url: str, blocker_pid: int) -> int:
    """Backends of the test database waiting for a row lock that ``blocker_pid`` holds."""
    with get_engine(url).connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND :pid = ANY(pg_blocking_pids(pid))"
            ),
            {"pid": blocker_pid},
        ).scalar_one()


def deadlocked(url: str, first: str, second: str, run: Callable[[], Any]) -> list[Any]:
    """``run()`` (which writes ``first``, then ``second``) on a thread while another transaction holds
    ``second`` and, once ``run`` waits for it, asks for ``first``: a deadlock, whose victim is ``run``'s
    transaction (the other session's deadlock check is put off for 30 s). Returns what ``run`` returned
    or raised."""
    out: list[Any] = []
    touch = text("UPDATE jobs SET message = 'touched by another transaction' WHERE id = :id")
    with get_engine(url).connect() as other:
        other.execute(text("SET deadlock_timeout = '30s'"))
        other.execute(touch, {"id": second})  # holds the second row until its commit
        pid = other.execute(text("SELECT pg_backend_pid()")).scalar_one()

        def target() -> None:
            try:
                out.append(run())
            except Exception as exc:
                out.append(exc)

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        wait_for(lambda: lock_waiters(url, pid) == 1, "the machine's transaction to wait for the row")
        other.execute(touch, {"id": first})  # the cycle: PostgreSQL ends the machine's transaction
        other.commit()
        thread.join(30)
    assert out, "the machine's transaction did not finish"
    return out


def test_a_group_commit_chosen_as_a_deadlocks_victim_is_run_again(machine: Machine, owner: int) -> None:
    committer = Committer(machine, interval_s=30.0, max_steps=2)
    first, second = add_job(machine.url, owner, "running"), add_job(machine.url, owner, "running")
    rows: dict[str, Any] = {}

    def succeed(job_id: str) -> None:
        try:
            rows[job_id] = committer.run(steps.succeed(job_id, 1, None, "Done"), what="succeed")
        except Exception as exc:
            rows[job_id] = exc

    def run() -> dict[str, Any]:  # the first job's move is first in the batch, the second's next
        threads = [threading.Thread(target=succeed, args=(first,), daemon=True)]
        threads[0].start()
        wait_for(lambda: len(committer._queue) == 1, "the first move to wait")  # noqa: SLF001
        threads.append(threading.Thread(target=succeed, args=(second,), daemon=True))
        threads[1].start()
        for t in threads:
            t.join(30)
        return rows

    committer.run(lambda tx: None, what="warm-up")  # starts its thread (and its bookkeeping)
    # Two other job threads run attempts: a flush waits for more moves until it holds 2.
    committer._claimers.update({-1, -2})  # noqa: SLF001
    committer._running.update({-1, -2})  # noqa: SLF001
    deadlocked(machine.url, first, second, run)
    assert {job_id: getattr(row, "status", row) for job_id, row in rows.items()} == {
        first: "succeeded",
        second: "succeeded",
    }
    assert snapshot(machine.url, first)["status"] == snapshot(machine.url, second)["status"] == "succeeded"
    assert broken_invariants(machine.url) == []


def test_a_direct_commit_chosen_as_a_deadlocks_victim_is_run_again(machine: Machine, owner: int) -> None:
    first, second = add_job(machine.url, owner, "running"), add_job(machine.url, owner, "running")
    out = deadlocked(
        machine.url,
        first,
        second,
        lambda: machine.commit(steps.succeed(first, 1, None, "Done"), steps.succeed(second, 1, None, "Done")),
    )
    assert not isinstance(out[0], Exception), out[0]
    assert [row.status for row in out[0]] == ["succeeded", "succeeded"]
    assert broken_invariants(machine.url) == []
