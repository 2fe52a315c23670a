"""Group commit (``shared.jobstate.committer``) on SQLite and PostgreSQL: several job threads' moves
share one transaction, each waiter gets its own row or its own error, and a job's own moves keep
their order."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event, select

from shared.accounts import Accounts
from shared.db import forget_engines, get_engine, get_sessionmaker
from shared.dispatch import NoDispatch
from shared.jobstate import Machine, steps
from shared.jobstate.committer import Committer
from shared.jobstate.tx import Tx
from shared.models import JobAttempt, JobEvent
from shared.publisher import NullPublisher
from tests.unit.jobstate_helpers import add_job, broken_invariants, snapshot

THREADS = 8


@pytest.fixture
def machine(database_url: str) -> Machine:
    return Machine(database_url, NullPublisher(), NoDispatch())


@pytest.fixture
def owner(database_url: str) -> int:
    return Accounts(database_url).ensure_user("committer@example.com").id


def count_commits(machine: Machine) -> list[int]:
    commits = [0]

    @event.listens_for(machine.engine, "commit")
    def _commit(_conn: Any) -> None:
        commits[0] += 1

    return commits


def in_threads(work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` on THREADS threads at once (a barrier first); each one's result or exception."""
    barrier = threading.Barrier(THREADS)
    out: list[Any] = [None] * THREADS

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work(i)
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def claimed(machine: Machine, committer: Committer, owner: int) -> list[str]:
    """THREADS queued jobs, each claimed through the committer from its own thread."""
    url = machine.url
    ids = [add_job(url, owner, "queued") for _ in range(THREADS)]
    rows = in_threads(lambda i: committer.run(steps.claim(ids[i], "w1", 101), what="claim", job_id=ids[i]))
    assert [r.status for r in rows] == ["running"] * THREADS, rows
    return ids


def test_several_jobs_moves_share_one_transaction(machine: Machine, owner: int) -> None:
    committer = Committer(machine, interval_s=5.0, max_steps=THREADS)
    ids = claimed(machine, committer, owner)
    commits = count_commits(machine)
    before = committer.batches
    rows = in_threads(
        lambda i: committer.run(steps.succeed(ids[i], 1, {"n": i}, "Done"), what="succeed", job_id=ids[i])
    )
    assert [(r.id, r.status, r.result) for r in rows] == [(ids[i], "succeeded", {"n": i}) for i in range(8)]
    assert (commits[0], committer.batches - before, committer.largest) == (1, 1, THREADS)
    assert broken_invariants(machine.url) == []
    with get_sessionmaker(machine.url)() as session:
        ends = session.scalars(select(JobEvent.job_id).where(JobEvent.status == "succeeded")).all()
        outcomes = session.scalars(select(JobAttempt.outcome).where(JobAttempt.job_id.in_(ids))).all()
    assert sorted(ends) == sorted(ids) and outcomes == ["succeeded"] * THREADS


def test_a_step_that_raises_fails_only_its_own_waiter(machine: Machine, owner: int) -> None:
    committer = Committer(machine, interval_s=5.0, max_steps=THREADS)
    ids = claimed(machine, committer, owner)

    def broken(tx: Tx) -> None:
        tx.move("succeed", ids[3], attempt=1, result=None, message="half")  # written, then rolled back
        raise ValueError("this job's own error")

    def work(i: int) -> Any:
        step = broken if i == 3 else steps.succeed(ids[i], 1, None, "Done")
        return committer.run(step, what="succeed", job_id=ids[i])

    out = in_threads(work)
    assert isinstance(out[3], ValueError) and str(out[3]) == "this job's own error"
    assert [r.status for i, r in enumerate(out) if i != 3] == ["succeeded"] * (THREADS - 1)
    assert snapshot(machine.url, ids[3])["status"] == "running"  # its half move was rolled back
    assert broken_invariants(machine.url) == []


def test_a_jobs_own_moves_keep_their_order(machine: Machine, owner: int) -> None:
    committer = Committer(machine, interval_s=0.01, max_steps=3)
    ids = [add_job(machine.url, owner, "queued") for _ in range(THREADS)]

    def job(i: int) -> list[str]:
        run = committer.run
        statuses = [run(steps.claim(ids[i], "w1", 101), what="claim", job_id=ids[i]).status]
        for percent in (10, 50, 90):
            row = run(steps.report(ids[i], 1, percent, f"at {percent}"), what="report", job_id=ids[i])
            statuses.append(f"{row.status}:{row.progress}")
        statuses.append(run(steps.succeed(ids[i], 1, None, "Done"), what="succeed", job_id=ids[i]).status)
        return statuses

    out = in_threads(job)
    assert out == [["running", "running:10", "running:50", "running:90", "succeeded"]] * THREADS
    assert committer.largest > 1  # the threads' moves did share flushes
    with get_sessionmaker(machine.url)() as session:
        for job_id in ids:
            events = session.scalars(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
            ).all()
            seen = [(e.status, e.progress) for e in events][1:]  # after the job's "queued" event
            assert seen[-4:] == [("running", 10), ("running", 50), ("running", 90), ("succeeded", 100)]
            assert [e.created_at for e in events] == sorted(e.created_at for e in events)


def test_a_forked_child_runs_its_own_committer(sqlite_url: str) -> None:
    machine = Machine(sqlite_url, NullPublisher(), NoDispatch())
    owner = Accounts(sqlite_url).ensure_user("fork@example.com").id
    committer = Committer(machine, interval_s=0.0)
    first, second = add_job(sqlite_url, owner, "queued"), add_job(sqlite_url, owner, "queued")
    assert committer.run(steps.claim(first, "w1", 1), what="claim").status == "running"
    pid = os.fork()
    if pid == 0:  # the child: the parent's committer thread does not exist here
        forget_engines()
        row = committer.run(steps.claim(second, "w1", 2), what="claim")
        os._exit(0 if row is not None and row.status == "running" else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert snapshot(sqlite_url, second)["status"] == "running"
    get_engine(sqlite_url).dispose()


def test_no_wait_for_more_once_every_running_job_thread_has_a_move_waiting(
    machine: Machine, owner: int
) -> None:
    """Two job threads, a 60 s wait for more moves, and far more room than moves: a flush goes as soon
    as every thread that runs an attempt waits in it, or once the other thread's attempt ended (it used
    to wait the whole interval, since another thread might come), so the two jobs' ten moves finish well
    inside one interval."""
    committer = Committer(machine, interval_s=60.0, max_steps=64)
    ids = [add_job(machine.url, owner, "queued") for _ in range(2)]
    barrier = threading.Barrier(2)
    out: list[Any] = [None, None]

    def job(i: int) -> None:
        run = committer.run
        barrier.wait()  # both start together, so their moves overlap
        statuses = [run(steps.claim(ids[i], "w1", 101), what="claim", job_id=ids[i]).status]
        for percent in (25, 50, 75):
            statuses.append(run(steps.report(ids[i], 1, percent, "on"), what="report", job_id=ids[i]).status)
        statuses.append(run(steps.succeed(ids[i], 1, None, "Done"), what="succeed", job_id=ids[i]).status)
        out[i] = statuses

    threads = [threading.Thread(target=job, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)  # a third of the interval
    assert out == [["running", "running", "running", "running", "succeeded"]] * 2
    assert broken_invariants(machine.url) == []
