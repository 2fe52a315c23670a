"""Random sequences of moves on real SQLite; the invariants hold after every step (``shared.jobstate``).

Two workers (``w1``, ``w2``) claim, report, succeed and fail; users cancel; the maintenance loop
recovers lost processes, releases due jobs and wakes blocked ones; operators retry dead letters; the
reaper fails stuck jobs. Half the jobs share one concurrency key of limit 1. Writes of a stale attempt
(a worker fenced out by a recovery) are tried too: they must change nothing. Jobs are also created as
workflow steps waiting for their dependencies (released or canceled by the settler's moves) and as
debounced scheduled jobs (moved by repeats); fair share holds queued ones for their turn.
"""

from __future__ import annotations

import itertools
import shutil
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from shared.accounts import Accounts
from shared.db import forget_engines, get_engine, get_sessionmaker
from shared.dispatch import NoDispatch
from shared.fairshare import HOLD
from shared.jobstate import Machine, steps
from shared.models import Job, new_id, utcnow
from shared.publisher import NullPublisher
from tests.unit.jobstate_helpers import add_workflow, broken_invariants

WORKERS = {"w1": 101, "w2": 202}
BOOM = {"type": "Boom", "message": "boom"}


def test_random_sequences_of_moves_keep_the_invariants(tmp_path, sqlite_template):
    examples = itertools.count()

    class Jobs(RuleBasedStateMachine):
        """One example: a fresh database (a copy of the migrated template)."""

        jobs = Bundle("jobs")

        def __init__(self) -> None:
            super().__init__()
            path = tmp_path / f"example-{next(examples)}.sqlite3"
            shutil.copy(sqlite_template, path)
            self.url = f"sqlite:///{path}"
            self.user_id = Accounts(self.url).ensure_user("alice@example.com").id
            self.machine = Machine(self.url, NullPublisher(), NoDispatch())

        def teardown(self) -> None:
            forget_engines()

        def job(self, job_id: str) -> Job:
            with get_sessionmaker(self.url)() as session:
                found = session.get(Job, job_id)
                assert found is not None
                return found

        @rule(
            target=jobs,
            keyed=st.booleans(),
            attempts=st.integers(1, 3),
            kind=st.sampled_from(["queued", "step", "debounced"]),
        )
        def submit(self, keyed: bool, attempts: int, kind: str) -> str:
            """A job, a workflow step waiting for its dependencies, or a debounced scheduled job."""
            now = utcnow()
            status = {"queued": "queued", "step": "blocked", "debounced": "scheduled"}[kind]
            debounce_key = f"d{next(examples)}" if kind == "debounced" else None
            row = {
                "id": new_id(),
                "user_id": self.user_id,
                "type": "diagnostics.probe",
                "status": status,
                "progress": 0,
                "message": status,
                "queue": "default",
                "attempts": 0,
                "max_attempts": attempts,
                "params": {},
                "concurrency_key": "k" if keyed and kind != "step" else None,
                "concurrency_limit": 1 if keyed else None,
                "workflow_id": add_workflow(self.url, self.user_id) if kind == "step" else None,
                "debounce_key": debounce_key,
                "scheduled_at": now + timedelta(seconds=30) if debounce_key else None,
                "created_at": now,
                "updated_at": now,
            }
            with get_engine(self.url).begin() as conn:
                self.machine.submit(conn, row)
            return row["id"]

        @rule(job_id=jobs, keyed=st.booleans(), cancel=st.booleans())
        def settle_step(self, job_id: str, keyed: bool, cancel: bool) -> None:
            """A workflow's settler: the step's dependencies are done (or one failed and cancels it)."""
            if cancel:
                self.machine.commit(steps.cancel_waiting(job_id, "Canceled: step a failed"))
            else:
                self.machine.commit(steps.release_step(job_id, "k" if keyed else None, "Queued"))

        @rule(job_id=jobs)
        def repeat_submit(self, job_id: str) -> None:
            """A repeat submit with the job's debounce key moves it (while it is scheduled)."""
            current = self.job(job_id)
            if current.debounce_key is not None:
                due = utcnow() + timedelta(seconds=60)
                self.machine.commit(
                    steps.debounce(
                        self.user_id, current.type, current.debounce_key, {"n": 2}, None, due, "Moved"
                    )
                )

        @rule(job_id=jobs)
        def hold(self, job_id: str) -> None:
            """Fair share holds a queued job for its owner's turn (not a move: its flag only)."""
            with get_engine(self.url).begin() as conn:
                conn.execute(HOLD, {"b_except": job_id})

        @rule(job_id=jobs, worker=st.sampled_from(sorted(WORKERS)))
        def claim(self, job_id: str, worker: str) -> None:
            self.machine.claim(job_id, worker, WORKERS[worker])

        @rule(job_id=jobs, stale=st.booleans())
        def report(self, job_id: str, stale: bool) -> None:
            attempt = self.job(job_id).attempts - (1 if stale else 0)
            self.machine.report(job_id, attempt, 50, "half way", utcnow())

        @rule(job_id=jobs, stale=st.booleans())
        def succeed(self, job_id: str, stale: bool) -> None:
            self.machine.succeed(job_id, self.job(job_id).attempts - (1 if stale else 0), {"ok": True})

        @rule(job_id=jobs, retry=st.booleans())
        def fail(self, job_id: str, retry: bool) -> None:
            retry_at = utcnow() + timedelta(seconds=1) if retry else None
            self.machine.fail_attempt(job_id, self.job(job_id).attempts, BOOM, "trace", retry_at)

        @rule(job_id=jobs)
        def cancel(self, job_id: str) -> None:
            """A user's cancel: not started -> canceled, running -> asked to stop."""
            self.machine.commit(steps.stop(job_id, "Canceled by alice"))

        @rule(job_id=jobs)
        def stop_at_cancel(self, job_id: str) -> None:
            """The body stopped at a cancel request (or the worker is stopping and gives it back)."""
            current = self.job(job_id)
            if current.cancel_requested:
                self.machine.cancel(job_id, current.attempts)
            else:
                self.machine.requeue(job_id, current.attempts, "Requeued: the worker was stopped")

        @rule(job_id=jobs, revoked=st.booleans())
        def recover(self, job_id: str, revoked: bool) -> None:
            current = self.job(job_id)
            self.machine.recover(
                job_id, current.worker or "", current.worker_pid, "worker process lost", revoked
            )

        @rule(job_id=jobs)
        def retry_dead(self, job_id: str) -> None:
            self.machine.retry_dead(job_id, 2)

        @rule()
        def reap(self) -> None:
            self.machine.reap_stale(utcnow() + timedelta(hours=7), 6 * 3600, 30)

        @rule()
        def release_and_wake(self) -> None:
            self.machine.release_due(utcnow() + timedelta(hours=1))
            self.machine.wake_all()

        @invariant()
        def invariants_hold(self) -> None:
            assert broken_invariants(self.url) == []

        @invariant()
        def a_key_runs_at_most_its_limit(self) -> None:
            with get_sessionmaker(self.url)() as session:
                running = session.scalars(
                    select(Job.id).where(Job.concurrency_key == "k", Job.status == "running")
                ).all()
            assert len(running) <= 1

    run_state_machine_as_test(
        Jobs,
        settings=settings(
            max_examples=30,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
