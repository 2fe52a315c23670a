"""Fair share within a queue, with real workers and Redis: users take turns by their recent starts.

Orders are read from the jobs' ``started_at``, never from sleeps. BOUND is the in-flight bound with the
2-process pools used here (the minimum): jobs already sent when another user arrives start first.
"""

from __future__ import annotations

from pathlib import Path

import requests
from sqlalchemy import select, text

from questboard.app import job_types
from questboard.testing import ManagedProcess, http_ok, wait_for, web_process
from shared import defaults
from shared.accounts import Accounts
from shared.admin import Operations
from shared.db import get_engine
from shared.deadletters import DeadLetters
from shared.dispatch import NoDispatch
from shared.models import Job
from shared.publisher import NullPublisher
from shared.system import SystemJobs
from tests.faults.jobtypes import LEDGER_DDL

BOUND = defaults.FAIR_SHARE_MIN_IN_FLIGHT
SHORT = {"steps": 1, "step_ms": 20}


def start_order(stack, ids: list[str]) -> list[Job]:
    """The jobs ``ids`` once all have started, in the order they started."""
    wait_for(lambda: all(j.started_at for j in stack.jobs(ids)), 120, 0.1, what=f"{len(ids)} jobs started")
    return sorted(stack.jobs(ids), key=lambda j: (j.started_at, j.id))


def largest_lead(order: list[Job], user_id: int) -> int:
    """How far ``user_id``'s starts ever got ahead of (or behind) everyone else's."""
    lead, worst = 0, 0
    for job in order:
        lead += 1 if job.user_id == user_id else -1
        worst = max(worst, abs(lead))
    return worst


def test_a_single_job_behind_another_users_400_job_backlog_starts_after_a_few(stack):
    bob = Accounts(stack.db_url).ensure_user("bob@example.com")
    stack.start_worker(concurrency=2)
    backlog = [stack.submit("diagnostics.probe", SHORT) for _ in range(400)]
    wait_for(
        lambda: sum(bool(j.started_at) for j in stack.jobs(backlog)) >= 20, 60, what="the backlog draining"
    )
    single = stack.service.submit(bob, "diagnostics.probe", SHORT)[0]["id"]
    bob_job = stack.wait_status(single, "succeeded", 60)
    before_bob = [j for j in stack.jobs(backlog) if j.started_at and j.started_at <= bob_job.started_at]
    after_submit = [j for j in before_bob if j.started_at >= bob_job.created_at]
    # Only what was already sent (the buffer) and a refill's worth start in between; FIFO would be ~370.
    assert len(after_submit) <= BOUND + 4, (len(after_submit), len(before_bob))
    assert len(before_bob) < 200  # most of the backlog was still waiting when bob's job started


def test_two_users_with_backlogs_take_turns(stack):
    bob = Accounts(stack.db_url).ensure_user("bob@example.com")
    alice_ids = [stack.submit("diagnostics.probe", SHORT) for _ in range(60)]
    bob_ids = [stack.service.submit(bob, "diagnostics.probe", SHORT)[0]["id"] for _ in range(60)]
    # The console's depth counts held jobs too: 120 wait, though only the buffer is in Redis.
    ops = Operations(
        stack.db_url, stack.redis.url, DeadLetters(stack.db_url, {}, NullPublisher(), NoDispatch())
    )
    assert {q["name"]: q["depth"] for q in ops.queues()}["default"] == 120
    assert stack.redis.client().llen("default") == BOUND
    stack.start_worker(concurrency=2)
    order = start_order(stack, alice_ids + bob_ids)
    # Alice's first BOUND were sent before bob submitted; bob catches up, then they alternate (FIFO: 60).
    assert largest_lead(order, stack.user.id) <= BOUND + 2
    assert largest_lead(order[3 * BOUND : 90], stack.user.id) <= 4


def test_system_jobs_count_as_one_user(stack):
    system = SystemJobs(
        stack.db_url, job_types("tests.reliability.jobtypes"), NullPublisher(), stack.service.dispatcher
    )
    alice_ids = [stack.submit("diagnostics.probe", SHORT) for _ in range(60)]
    # Two job types, both the system's: one user's turns between them, not one each.
    system_ids = [
        system.submit("diagnostics.probe", SHORT)[0]["id"]
        if n % 2
        else system.submit("test.sleep", {"seconds": 0.02})[0]["id"]
        for n in range(60)
    ]
    stack.start_worker(concurrency=2)
    order = start_order(stack, alice_ids + system_ids)
    assert largest_lead(order, stack.user.id) <= BOUND + 2
    assert largest_lead(order[3 * BOUND : 90], stack.user.id) <= 4


def test_held_jobs_survive_a_worker_sigkill_and_a_web_restart(stack, tmp_path: Path):
    """None lost, none run twice: each body records its run in a ledger whose key is the job id."""
    with get_engine(stack.db_url).begin() as conn:
        conn.execute(text(LEDGER_DDL))
    env = {
        **stack.env,
        "QUESTBOARD_JOB_MODULES": "tests.reliability.jobtypes,tests.faults.jobtypes",
        "QUESTBOARD_USER_JOB_LIMIT": "1000",
    }
    stack.env.update(env)
    people = [Accounts(stack.db_url).ensure_user(f"p{n}@example.com") for n in range(2)]
    tokens = [Accounts(stack.db_url).issue_api_token(p) for p in people]

    def start_web() -> tuple[ManagedProcess, str]:
        web, base = web_process(env, tmp_path)
        web.start()
        wait_for(lambda: http_ok(base + "/healthz"), 60, 0.2, what="web up")
        return web, base

    def submit(base: str, token: str, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            resp = requests.post(
                base + "/api/jobs",
                json={"type": "fault.ledger", "params": {"steps": 2, "step_s": 0.05}},
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["id"])
        return ids

    web, base = start_web()
    try:
        accepted = submit(base, tokens[0], 8) + submit(base, tokens[1], 8)
        doomed = stack.start_worker(concurrency=2, name="doomed")
        accepted += submit(base, tokens[0], 8) + submit(base, tokens[1], 8)
        wait_for(lambda: sum(j.status == "succeeded" for j in stack.jobs(accepted)) >= 4, 60, what="progress")
        with stack.sessions() as session:
            held = session.scalar(select(Job.id).where(Job.held.is_(True)).limit(1))
        assert held is not None  # the kill below happens while jobs are held in the database
        doomed.kill()
        web.kill()
        web, base = start_web()
        accepted += submit(base, tokens[1], 4)
        stack.start_worker(concurrency=2, name="rescuer")
        wait_for(
            lambda: all(j.status in ("succeeded", "failed", "canceled") for j in stack.jobs(accepted)),
            120,
            0.2,
            what="every job final",
        )
    finally:
        web.stop(timeout_s=10)
    assert {j.id: j.status for j in stack.jobs(accepted)} == dict.fromkeys(accepted, "succeeded")
    with get_engine(stack.db_url).connect() as conn:
        ledger = conn.execute(text("SELECT job_id FROM fault_ledger")).scalars().all()
    assert sorted(ledger) == sorted(accepted)
