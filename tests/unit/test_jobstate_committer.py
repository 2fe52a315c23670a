"""Group commit (``shared.jobstate.committer``) on SQLite and PostgreSQL: several job threads' moves
share one transaction, each waiter gets its own row or its own error, and a job's own moves keep
their order."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.accounts import Accounts
from shared.db import forget_engines, get_engine, get_sessionmaker
from shared.dispatch import NoDispatch
from shared.errors import WorkerRecycling
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


def _raising(error: BaseException, calls: list[str], name: str, then: Any = None) -> Any:
    """A step that records its call, then raises ``error`` (the first time only, when ``then`` is a step
    to run on later calls)."""

    def step(tx: Tx) -> Any:
        calls.append(name)
        if then is not None and calls.count(name) > 1:
            return then(tx)
        raise error

    return step


def test_a_database_error_fails_the_whole_batch_at_once(machine: Machine, owner: int) -> None:
    """The database itself failing (here: locked past the busy timeout) is not one move's error: running
    the batch's moves again one by one would only meet it again, once per move, while every job thread of
    the process waits (8 waits of 30 s on SQLite). Every waiter gets it after the one attempt."""
    committer = Committer(machine, interval_s=5.0, max_steps=THREADS)
    ids = claimed(machine, committer, owner)
    calls: list[str] = []
    locked = OperationalError("UPDATE jobs ...", {}, Exception("database is locked"))

    def counted(i: int) -> Any:
        if i == 0:
            return _raising(locked, calls, "0")
        succeed = steps.succeed(ids[i], 1, None, "Done")

        def step(tx: Tx) -> Any:
            calls.append(str(i))
            return succeed(tx)

        return step

    out = in_threads(lambda i: committer.run(counted(i), what="succeed", job_id=ids[i]))
    assert all(isinstance(o, OperationalError) for o in out), out
    assert max(Counter(calls).values()) == 1, calls  # no move ran again (the moves after it: not at all)
    assert {snapshot(machine.url, job_id)["status"] for job_id in ids} == {"running"}  # nothing half-done


def test_a_lost_slot_race_in_a_batch_of_one_is_run_again(machine: Machine, owner: int) -> None:
    """A prefork process has one job thread, so each of its batches is one move: a lost race for a key's
    slot (the unique constraint) gets the machine's retries there too, instead of failing at once."""
    committer = Committer(machine, interval_s=0.0)
    job_id = add_job(machine.url, owner, "queued")
    calls: list[str] = []
    raced = IntegrityError("INSERT INTO concurrency_slots ...", {}, Exception("duplicate key"))
    step = _raising(raced, calls, "claim", then=steps.claim(job_id, "w1", 101))
    row = committer.run(step, what="claim", job_id=job_id)
    assert row is not None and row.status == "running"
    assert calls == ["claim", "claim"]


def test_a_failed_commit_is_not_run_again(machine: Machine, owner: int) -> None:
    """An error raised by the COMMIT leaves the batch maybe stored: its moves are not run again (a replay
    could apply them twice); each waiter gets the error, as a direct commit's caller would."""
    committer = Committer(machine, interval_s=5.0, max_steps=THREADS)
    ids = claimed(machine, committer, owner)
    calls: list[str] = []
    failed = [False]

    @event.listens_for(machine.engine, "commit")
    def _commit(_conn: Any) -> None:
        if not failed[0]:
            failed[0] = True
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

    def counted(i: int) -> Any:
        succeed = steps.succeed(ids[i], 1, None, "Done")

        def step(tx: Tx) -> Any:
            calls.append(str(i))
            return succeed(tx)

        return step

    try:
        out = in_threads(lambda i: committer.run(counted(i), what="succeed", job_id=ids[i]))
    finally:
        event.remove(machine.engine, "commit", _commit)
    assert all(isinstance(o, OperationalError) for o in out), out
    assert sorted(Counter(calls).values()) == [1] * THREADS  # every move ran in the batch, none again


def test_a_sealed_committer_takes_only_the_sealing_threads_moves(machine: Machine, owner: int) -> None:
    """A recycling worker (workers.threadpool) seals its committer: another job thread's claim is refused
    with WorkerRecycling (its message goes back to the broker), its other moves write nothing (the job is
    being given back, and may soon run elsewhere with the same attempt number), and the sealing thread's
    own moves — the give-backs — still go through."""
    committer = Committer(machine, interval_s=0.0)
    running, queued = add_job(machine.url, owner, "running"), add_job(machine.url, owner, "queued")
    committer.seal()

    def job_thread() -> list[Any]:
        out: list[Any] = []
        try:
            committer.run(steps.claim(queued, "w1", 101), what="claim", job_id=queued)
        except WorkerRecycling as exc:
            out.append(exc)
        out.append(committer.run(steps.succeed(running, 1, None, "late"), what="succeed", job_id=running))
        return out

    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.extend(job_thread()))
    thread.start()
    thread.join(10)
    assert isinstance(result[0], WorkerRecycling) and result[1] is None
    assert snapshot(machine.url, queued)["status"] == "queued"
    assert snapshot(machine.url, running)["status"] == "running"  # the late success was not written
    row = committer.run(steps.give_back(running, 1, "recycled", None, ((), ())), what="requeue")
    assert row is not None and row.status == "queued"


def test_a_claim_that_ends_blocked_does_not_hold_later_flushes(machine: Machine, owner: int) -> None:
    """A claim that found its key's slots taken ends ``blocked``: that thread runs no attempt, so a flush
    does not wait for a move of it (it used to, for the whole interval, while another thread worked)."""
    committer = Committer(machine, interval_s=60.0, max_steps=64)
    holder = add_job(machine.url, owner, "running", concurrency_key="k", concurrency_limit=1)
    waiter = add_job(machine.url, owner, "queued", concurrency_key="k", concurrency_limit=1)
    other = add_job(machine.url, owner, "queued")
    done: list[Any] = []

    def claim(job_id: str) -> None:
        done.append(committer.run(steps.claim(job_id, "w1", 101), what="claim", job_id=job_id).status)

    for job_id in (waiter, other):  # two claiming threads, one after the other
        t = threading.Thread(target=claim, args=(job_id,))
        t.start()
        t.join(20)
    assert done == ["blocked", "running"]
    finished: list[Any] = []
    t = threading.Thread(
        target=lambda: finished.append(committer.run(steps.succeed(other, 1, None, "Done"), what="succeed"))
    )
    t.start()
    t.join(20)  # a third of the interval
    assert finished and finished[0].status == "succeeded"
    assert snapshot(machine.url, holder)["status"] == "running"
