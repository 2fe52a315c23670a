"""A Celery revoke of a job's task (Flower, ``celery control revoke``, ``app.control.revoke``) ends the job
``canceled``: never stranded ``queued``, its attempt closed, its slot and its place in the owner's active
count freed, the update published, the body never run again. The task id of a job's message is its id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from questboard.testing import wait_for
from shared import defaults
from shared.deadletters import DeadLetters
from shared.errors import LimitReached
from shared.models import JobSlot
from shared.processes import pid_alive
from shared.publisher import SocketIOPublisher
from tests.reliability.conftest import JOB_MODULES, Stack


@pytest.fixture
def any_db_stack(tmp_path, database_url) -> Iterator[Stack]:
    """A stack on SQLite and on PostgreSQL."""
    stack = Stack(tmp_path / "s", database_url)
    yield stack
    stack.close()


def revoke(stack: Stack, job_id: str, terminate: bool = False) -> None:
    """What Flower's revoke button and ``celery control revoke`` send: a broadcast to every worker."""
    from workers.celery_app import make_celery

    app = make_celery(stack.settings)
    app.control.revoke(job_id, terminate=terminate)
    app.close()


class Updates:
    """The job:update messages published through Redis (what the console's Socket.IO relays)."""

    def __init__(self, stack: Stack) -> None:
        self.pubsub = stack.redis.client().pubsub()
        self.pubsub.subscribe(defaults.SOCKETIO_CHANNEL)
        self.seen: list[dict[str, Any]] = []

    def _drain(self) -> None:
        while (message := self.pubsub.get_message(timeout=0.05)) is not None:
            if message["type"] == "message":
                payload = json.loads(message["data"])
                if payload.get("event") == "job:update":  # python-socketio sends the emit's args as a list
                    self.seen.extend(payload["data"])

    def wait(self, job_id: str, status: str) -> dict[str, Any]:
        def published() -> dict[str, Any] | None:
            self._drain()
            return next((d for d in self.seen if d["id"] == job_id and d["status"] == status), None)

        found = wait_for(published, 5, what=f"job:update {job_id} {status}")
        self.pubsub.close()
        return found


def held_slots(stack: Stack, key: str) -> int:
    with stack.sessions() as session:
        return session.scalar(select(func.count()).select_from(JobSlot).where(JobSlot.key == key)) or 0


def test_a_revoked_queued_job_is_canceled_and_its_owner_can_submit_again(any_db_stack):
    stack = any_db_stack
    stack.start_worker(concurrency=1, name="busy", pool="prefork")  # terminate ends a pool process
    busy = stack.submit("test.sleep", {"seconds": 60})
    stack.wait_status(busy, "running")
    waiting = stack.submit("test.sleep", {"seconds": 0})  # its message waits in Redis: the pool is busy
    stack.service.user_job_limit = 2
    with pytest.raises(LimitReached):
        stack.submit("test.sleep", {"seconds": 0})
    updates = Updates(stack)

    revoke(stack, waiting)

    canceled = stack.wait_status(waiting, "canceled", 5)
    assert canceled.started_at is None and canceled.finished_at is not None
    assert canceled.message == "Canceled through Celery (revoke)"
    assert updates.wait(waiting, "canceled")["message"] == canceled.message
    assert stack.job(busy).status == "running"  # only the revoked job
    again = stack.submit("test.sleep", {"seconds": 0})  # its place in the active count is free
    # Free the pool: the revoked message is then dropped unrun, and the next job runs.
    revoke(stack, busy, terminate=True)
    stack.wait_status(again, "succeeded", 30)
    assert waiting not in stack.started_jobs()
    assert stack.job(waiting).status == "canceled"


def test_revoke_with_terminate_of_a_running_job_cancels_it_and_the_pool_serves_on(any_db_stack):
    stack = any_db_stack
    stack.start_worker(concurrency=1, name="pool", pool="prefork")  # terminate ends a pool process
    # Never reaches a progress point (no cooperative cancel), and holds a concurrency slot.
    victim = stack.submit("test.exclusive", {"seconds": 60, "key": "r"})
    running = stack.wait_status(victim, "running")
    wait_for(lambda: victim in stack.started_jobs(), 20, what="the victim's body started")
    assert held_slots(stack, "exclusive:r") == 1
    updates = Updates(stack)

    revoke(stack, victim, terminate=True)

    canceled = stack.wait_status(victim, "canceled", 5)
    assert canceled.message.startswith("Canceled through Celery (revoke")
    assert [(a.number, a.outcome, a.finished_at is not None) for a in stack.attempts(victim)] == [
        (1, "canceled", True)
    ]
    assert held_slots(stack, "exclusive:r") == 0
    updates.wait(victim, "canceled")
    wait_for(lambda: not pid_alive(running.worker_pid), 10, what="the terminated pool process gone")
    # The pool keeps serving, and the freed slot lets the next job of the same key run.
    following = stack.submit("test.exclusive", {"seconds": 0.2, "key": "r"})
    assert stack.wait_status(following, "succeeded", 30).attempts == 1
    job = stack.job(victim)
    assert job.status == "canceled" and job.attempts == 1
    assert stack.started_jobs().count(victim) == 1  # never run again


def test_revoke_with_terminate_of_a_queued_job_cancels_it_and_leaves_the_running_one_alone(stack):
    """What Flower's "terminate" button sends for a job whose message waits behind a busy pool."""
    stack.start_worker(concurrency=1, name="busy")
    busy = stack.submit("test.sleep", {"seconds": 60})
    running = stack.wait_status(busy, "running")
    waiting = stack.submit("test.sleep", {"seconds": 0})
    assert stack.job(waiting).status == "queued"
    updates = Updates(stack)

    revoke(stack, waiting, terminate=True)

    canceled = stack.wait_status(waiting, "canceled", 5)
    assert canceled.started_at is None and canceled.message.startswith("Canceled through Celery (revoke")
    assert stack.attempts(waiting) == []
    updates.wait(waiting, "canceled")
    assert stack.job(busy).status == "running" and pid_alive(running.worker_pid)  # not its process
    assert waiting not in stack.started_jobs()


def test_revoke_without_terminate_stops_a_running_job_at_its_next_progress_point(any_db_stack):
    stack = any_db_stack
    stack.start_worker(concurrency=1, name="coop")
    probe = stack.submit("diagnostics.probe", {"steps": 600, "step_ms": 100})
    running = stack.wait_status(probe, "running")

    revoke(stack, probe)  # Celery itself lets a running task run on; Questboard asks it to stop

    canceled = stack.wait_status(probe, "canceled", 5)
    assert [(a.outcome, a.finished_at is not None) for a in stack.attempts(probe)] == [("canceled", True)]
    assert pid_alive(running.worker_pid)  # stopped by itself: its process was not ended
    following = stack.submit("diagnostics.probe", {"steps": 1})
    stack.wait_status(following, "succeeded", 30)
    assert stack.job(probe).finished_at == canceled.finished_at


def test_revoke_without_terminate_of_a_body_that_never_reports_ends_it_after_the_cancel_grace(stack):
    stack.start_worker(
        concurrency=1, name="deaf", pool="prefork"
    )  # a pool process to end (threads: test_thread_pools.py)
    deaf = stack.submit("test.sleep", {"seconds": 60})
    stack.wait_status(deaf, "running")
    revoke(stack, deaf)
    stack.wait_status(deaf, "canceled", 5)
    following = stack.submit("test.sleep", {"seconds": 0})
    stack.wait_status(following, "succeeded", 30)
    assert stack.started_jobs().count(deaf) == 1


def test_a_revoked_scheduled_job_is_canceled_without_waiting_for_its_time(stack):
    stack.start_worker(concurrency=1, name="sched")
    later = stack.submit("test.sleep", {"seconds": 0}, delay_seconds=60)
    assert stack.job(later).status == "scheduled"
    revoke(stack, later)
    canceled = stack.wait_status(later, "canceled", 5)
    assert canceled.started_at is None and canceled.message == "Canceled through Celery (revoke)"


def test_a_message_whose_id_was_revoked_earlier_cancels_its_job_when_it_arrives(stack):
    """Workers remember a revoked id: a later message of that job (here an operator's retry of a dead-letter
    job revoked after it failed) is dropped unrun, and the job ends canceled instead of waiting queued."""
    from questboard.app import job_types
    from workers.celery_app import make_celery
    from workers.dispatch import CeleryDispatcher, pools_of

    stack.start_worker(concurrency=1, name="memory", pool="prefork")  # test.crash is a process type
    crashing = stack.submit("test.crash")
    stack.wait_status(crashing, "failed", 60)
    revoke(stack, crashing)  # finished: nothing to cancel, but every worker now drops its messages
    wait_for(lambda: stack.job(crashing).status == "failed", 1, what="still failed")  # left alone
    registry = job_types(JOB_MODULES)
    dead = DeadLetters(
        stack.db_url,
        registry,
        SocketIOPublisher(stack.redis.url),
        CeleryDispatcher(make_celery(stack.settings), pools_of(registry)),
    )
    assert dead.retry(crashing)["status"] == "queued"
    canceled = stack.wait_status(crashing, "canceled", 5)
    assert canceled.message == "Canceled through Celery (revoke)"
    assert stack.started_jobs().count(crashing) == 3  # the three failed attempts only
