"""Every move of the table tried from every status, on SQLite and PostgreSQL (``shared.jobstate``).

Each job is set up in a status with every other condition of the move met (its attempt, its worker, due,
silent for hours, a free slot or a full one), so the status alone decides: a move succeeds exactly
when the table lists the status among its sources, ends where the table says, and leaves the invariants
true; a refused move changes nothing. Together the moves reach exactly the table's (from, to) pairs.
Queued jobs are set up held for their fair-share turn: a move out of ``queued`` must clear the flag.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from shared.accounts import Accounts
from shared.db import get_engine, get_sessionmaker
from shared.dispatch import NoDispatch
from shared.jobstate import MOVES, TRANSITIONS, Machine, steps
from shared.jobstate.steps import Step
from shared.models import Job, new_id, utcnow
from shared.publisher import NullPublisher
from shared.states import Status
from tests.unit.jobstate_helpers import add_job, broken_invariants, snapshot

NOW = utcnow()
SILENT_SINCE = NOW - timedelta(hours=6)
ERROR = {"type": "Boom", "message": "boom"}
KEYS: dict[str, str] = {}  # job id -> its concurrency key (of the jobs set up ``keyed``) or debounce key
HOLDERS: list[str] = []  # the running jobs that hold the slots of a full key
OWNER: dict[str, int] = {}  # the test's user (a debounce names the owner, not the job)
DEBOUNCED_TO = NOW + timedelta(seconds=30)

# move -> (how to make it, extra columns of the job so only its status can stand in the way)
CASES: dict[str, tuple[Callable[[str], Step], dict[str, Any]]] = {
    "claim": (lambda j: steps.claim(j, "w2", 202), {}),
    "block": (lambda j: steps.claim(j, "w2", 202), {"key_full": True}),
    "defer": (lambda j: steps.defer(j, NOW + timedelta(seconds=5), "Rate-limited"), {}),
    "wake": (lambda j: steps.wake(KEYS[j]), {"keyed": True}),
    "release_due": (steps.release_due, {}),
    "release_step": (
        lambda j: steps.release_step(j, "k-step", "Queued (its dependencies are done)"),
        {"step": True},
    ),
    "debounce": (lambda j: _debounce(KEYS[j]), {"debounced": True}),
    "report": (lambda j: steps.report(j, 1, 50, "half"), {}),
    "request_cancel": (steps.request_cancel, {}),
    "succeed": (lambda j: steps.succeed(j, 1, {"ok": True}, "Done"), {}),
    "retry_later": (lambda j: steps.fail_attempt(j, 1, ERROR, "tb", NOW + timedelta(seconds=9)), {}),
    "fail_attempt": (lambda j: steps.fail_attempt(j, 1, ERROR, "tb", None), {}),
    "cancel": (lambda j: steps.cancel(j, 1), {}),
    "requeue": (lambda j: steps.give_back(j, 1, "Requeued: the worker was stopped"), {}),
    "postpone": (lambda j: steps.give_back(j, 1, "Rate-limited", NOW + timedelta(seconds=5)), {}),
    "recover": (lambda j: steps.recover(j, "w1", 101, "worker process lost"), {}),
    "recover_spent": (lambda j: steps.recover(j, "w1", 101, "worker process lost"), {"max_attempts": 1}),
    "recover_canceled": (lambda j: steps.recover(j, "w1", 101, "lost", revoked=True), {}),
    "reap_stale": (lambda j: steps.reap_stale(j, SILENT_SINCE, "stuck"), {}),
    "cancel_waiting": (lambda j: steps.cancel_waiting(j, "Canceled by alice"), {}),
    "revoke": (lambda j: steps.revoke(j, True, "revoke, terminated"), {}),
    "retry_dead": (lambda j: steps.retry_dead(j, 3), {}),
    "discard_dead": (steps.discard_dead, {}),
}


def _debounce(key: str) -> Step:
    return steps.debounce(OWNER["id"], "diagnostics.probe", key, {"n": 2}, None, DEBOUNCED_TO, "Moved")


def test_every_move_is_tried_from_every_status(database_url):
    assert set(CASES) == {name for name, move in MOVES.items() if move.sources}, "a move without a case"
    user = Accounts(database_url).ensure_user("alice@example.com")
    OWNER["id"] = user.id
    machine = Machine(database_url, NullPublisher(), NoDispatch())
    reached: set[tuple[Status, Status]] = set()
    for name, (make, setup) in CASES.items():
        move = MOVES[name]
        for source in Status:
            job_id = _job_for(database_url, user.id, source, **setup)
            before = snapshot(database_url, job_id)

            (row,) = machine.commit(make(job_id), now=NOW)

            after = snapshot(database_url, job_id)
            where = f"{name} from {source}"
            if source in move.sources:
                assert row is not None and row.id == job_id, f"{where}: refused"
                assert after["status"] == move.ends_in(source), f"{where}: ended {after['status']}"
                assert after["events"][-1][0] == after["status"], f"{where}: no event"
                assert len(after["events"]) == len(before["events"]) + 1, f"{where}: not one event"
                reached.add((source, Status(after["status"])))
            else:
                assert row is None, f"{where}: allowed, the table does not list it"
                assert after == before, f"{where}: refused, yet the job changed"
            assert broken_invariants(database_url, [job_id, *HOLDERS]) == [], where
    allowed = {(s, t) for s, targets in TRANSITIONS.items() for t in targets}
    assert {(s, t) for s, t in reached if s != t} == allowed


def _job_for(
    url: str,
    user_id: int,
    status: Status,
    keyed: bool = False,
    key_full: bool = False,
    debounced: bool = False,
    **values: Any,
) -> str:
    """A job in ``status``; ``keyed``: of its own key (limit 1, free); ``key_full``: of a key whose every
    slot another running job holds (a running job under test holds the one after it); ``debounced``: of
    its own debounce key."""
    if debounced:
        values["debounce_key"] = f"burst-{status}"
    if keyed:
        values.update(concurrency_key=f"k-{status}", concurrency_limit=1)
    if key_full:
        key = f"full-{status}"
        running = status == Status.RUNNING
        values.update(concurrency_key=key, concurrency_limit=2 if running else 1, slot=1 if running else 0)
        HOLDERS.append(add_job(url, user_id, "running", concurrency_key=key, concurrency_limit=1))
        if not running:
            values["slot"] = 0
    if status == Status.QUEUED:
        values["held"] = True  # held for its fair-share turn: every move out of queued clears it
    job_id = add_job(url, user_id, status.value, now=NOW, **values)
    if keyed or debounced:
        KEYS[job_id] = values["concurrency_key" if keyed else "debounce_key"]
    return job_id


def test_a_parents_cancel_cancels_its_waiting_children_and_asks_its_running_ones_to_stop(database_url):
    user = Accounts(database_url).ensure_user("alice@example.com")
    machine = Machine(database_url, NullPublisher(), NoDispatch())
    parent = add_job(database_url, user.id, "running")
    children = {
        status: add_job(database_url, user.id, status, parent_id=parent)
        for status in ("queued", "retrying", "running", "succeeded")
    }

    assert machine.cancel_children(parent, "Import canceled") == 3

    after = {status: snapshot(database_url, job_id) for status, job_id in children.items()}
    assert after["queued"]["events"][-1] == ("canceled", "Import canceled")
    assert after["retrying"]["status"] == "canceled"
    assert after["running"]["events"][-1] == ("running", "Cancel requested")
    assert after["succeeded"]["events"] == [("succeeded", "succeeded")]
    assert snapshot(database_url, parent)["status"] == "running"
    assert broken_invariants(database_url) == []


def test_moves_write_what_they_name(database_url):
    """A debounce keeps the job scheduled with the new params and run time; a released workflow step
    gets its concurrency key back; a new workflow step waits blocked, with its first event."""
    user = Accounts(database_url).ensure_user("alice@example.com")
    machine = Machine(database_url, NullPublisher(), NoDispatch())
    debounced = add_job(database_url, user.id, "scheduled", debounce_key="burst")
    step = add_job(database_url, user.id, "blocked", step=True)

    OWNER["id"] = user.id
    machine.commit(
        _debounce("burst"),
        steps.release_step(step, "k-step", "Queued (its dependencies are done)"),
    )

    after = snapshot(database_url, debounced)
    assert (after["status"], after["params"], after["events"][-1]) == (
        "scheduled",
        {"n": 2},
        ("scheduled", "Moved"),
    )
    assert after["scheduled_at"].replace(tzinfo=None) == DEBOUNCED_TO.replace(tzinfo=None)
    with get_sessionmaker(database_url)() as session:
        released = session.get(Job, step)
        assert released is not None
        assert (released.status, released.concurrency_key) == ("queued", "k-step")
        workflow_id = released.workflow_id
    waiting = {
        "id": new_id(),
        "user_id": user.id,
        "type": "diagnostics.probe",
        "status": "blocked",
        "message": "Waiting for a",
        "queue": "default",
        "max_attempts": 3,
        "params": {},
        "workflow_id": workflow_id,
        "created_at": NOW,
        "updated_at": NOW,
    }
    with get_engine(database_url).begin() as conn:
        machine.submit(conn, waiting)
    assert snapshot(database_url, waiting["id"])["events"] == [("blocked", "Waiting for a")]
    assert broken_invariants(database_url) == []


def test_a_release_step_is_only_for_workflow_steps(database_url):
    """A job blocked on its concurrency key is woken by its key, never released as a step."""
    user = Accounts(database_url).ensure_user("alice@example.com")
    machine = Machine(database_url, NullPublisher(), NoDispatch())
    blocked = add_job(database_url, user.id, "blocked", concurrency_key="k", concurrency_limit=1)

    assert machine.commit(steps.release_step(blocked, "k", "Queued")) == [None]
    assert snapshot(database_url, blocked)["status"] == "blocked"


def test_the_after_final_hooks_hear_of_every_job_that_ended(database_url):
    user = Accounts(database_url).ensure_user("alice@example.com")
    machine = Machine(database_url, NullPublisher(), NoDispatch())
    heard: list[list[str]] = []
    machine.after_final(heard.append)
    machine.after_final(lambda ids: 1 / 0)  # a failing hook is logged; the moves stand
    running = add_job(database_url, user.id, "running")
    waiting = add_job(database_url, user.id, "queued")
    dead = add_job(database_url, user.id, "failed")

    machine.commit(steps.succeed(running, 1, None, "Done"), steps.cancel_waiting(waiting, "Canceled"))
    machine.discard_dead(dead)  # stays failed: not a job that ended now
    machine.report(running, 1, 5, "late", NOW)  # refused: nothing moved

    assert heard == [[running, waiting]]
    assert snapshot(database_url, waiting)["status"] == "canceled"


def test_a_steps_only_hook_hears_of_the_workflows_steps_that_ended(database_url):
    """The workflows' settling hook is told only of steps (the rows the moves returned say which): a
    commit that ends no step costs it nothing, not even the read that found no workflow."""
    user = Accounts(database_url).ensure_user("alice@example.com")
    machine = Machine(database_url, NullPublisher(), NoDispatch())
    every: list[list[str]] = []
    steps_heard: list[list[str]] = []
    machine.after_final(every.append)
    machine.after_final(steps_heard.append, steps_only=True)
    plain = add_job(database_url, user.id, "running")
    step = add_job(database_url, user.id, "running", step=True)
    other = add_job(database_url, user.id, "queued")

    machine.commit(steps.succeed(plain, 1, None, "Done"), steps.succeed(step, 1, None, "Done"))
    machine.commit(steps.cancel_waiting(other, "Canceled"))

    assert every == [[plain, step], [other]]
    assert steps_heard == [[step]]
