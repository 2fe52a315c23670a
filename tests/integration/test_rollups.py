"""Rollups for the console's 24 h charts (shared.rollups) on SQLite and PostgreSQL: counts and wait/run
percentiles per queue and bucket, kept in the database and filled by the workers' maintenance loop."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from questboard.testing import wait_for
from shared.db import get_sessionmaker
from shared.models import Job, JobAttempt, JobRollup, utcnow
from shared.rollups import ALL_QUEUES, Rollups, percentile
from tests.integration.helpers_app import log_in, wait_finished
from tests.integration.test_admin_support import run_and_fail, run_and_succeed, submit


@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url


def test_percentile_is_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0 and percentile(values, 95) == 19.0


def test_runs_are_counted_per_queue_and_for_every_queue(client, alice, settings):
    for _ in range(3):
        run_and_succeed(settings, submit(client, alice))
    run_and_fail(settings, submit(client, alice))
    run_and_succeed(settings, submit(client, alice, queue="low"))
    rollups = Rollups(settings.resolved_database_url)
    assert rollups.refresh() > 0

    every = rollups.series(ALL_QUEUES)
    assert sum(every["succeeded"]) == 4 and sum(every["failed"]) == 1
    assert every["succeeded"][-1] == 4  # the current minute
    assert every["wait_p50"][-1] is not None and every["run_p95"][-1] is not None
    low = rollups.series("low")
    assert sum(low["succeeded"]) == 1 and sum(low["failed"]) == 0
    assert sum(rollups.series("default")["succeeded"]) == 3

    # 15-minute buckets for the day, then minute buckets for the last hour.
    steps = {b - a for a, b in zip(every["t"], every["t"][1:], strict=False)}
    assert steps == {900, 60}
    assert every["t"][-1] - every["t"][0] >= 23 * 3600
    # Idempotent, and kept in the database: another instance (another process) reads the same.
    rollups.refresh()
    assert Rollups(settings.resolved_database_url).series(ALL_QUEUES) == every


def test_percentiles_of_wait_and_run_time_in_older_buckets(client, alice, settings):
    sessions = get_sessionmaker(settings.resolved_database_url)
    base = (utcnow() - timedelta(hours=3)).replace(minute=1, second=0, microsecond=0)
    with sessions() as session:
        for n in range(1, 21):
            job = Job(
                user_id=alice.user.id,
                type="diagnostics.probe",
                status="succeeded",
                queue="high",
                created_at=base,
                updated_at=base,
            )
            session.add(job)
            session.flush()
            started = base + timedelta(seconds=n)  # waited n s
            session.add(
                JobAttempt(
                    job_id=job.id,
                    number=1,
                    started_at=started,
                    outcome="succeeded",
                    finished_at=started + timedelta(seconds=n * 2),  # ran 2n s
                )
            )
        session.commit()
    rollups = Rollups(settings.resolved_database_url)
    rollups.refresh()  # an empty table: the whole day is computed
    high = rollups.series("high")
    i = high["t"].index(int(base.replace(minute=0).timestamp()))
    assert high["succeeded"][i] == 20
    assert (high["wait_p50"][i], high["wait_p95"][i]) == (10.0, 19.0)
    assert (high["run_p50"][i], high["run_p95"][i]) == (20.0, 38.0)


def test_console_draws_the_day_from_the_rollups(client, accounts, admin, alice, settings):
    run_and_succeed(settings, submit(client, alice, queue="low"))
    Rollups(settings.resolved_database_url).refresh()
    log_in(client, accounts, admin)
    page = client.get("/admin?history=low").get_data(as_text=True)
    data = json.loads(
        re.search(r'<script type="application/json" id="history-data">(.*?)</script>', page, re.S)[1]
    )
    assert sum(data["succeeded"]) == 1 and 'aria-current="true">low<' in page


def test_the_maintenance_loop_fills_the_rollups(client, alice, settings, env, start_worker):
    env["QUESTBOARD_ROLLUP_INTERVAL_S"] = "2"  # the operator's knob; 30 s by default
    start_worker()
    job_id = submit(client, alice, steps=2)
    wait_finished(client, alice, job_id)

    def rolled() -> bool:
        with get_sessionmaker(settings.resolved_database_url)() as session:
            return (
                session.scalar(
                    select(func.sum(JobRollup.succeeded)).where(
                        JobRollup.queue == "default", JobRollup.bucket_s == 60
                    )
                )
                or 0
            ) >= 1

    wait_for(rolled, 60, 0.5, what="the maintenance loop to roll the run up")
