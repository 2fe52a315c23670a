"""Cron catch-up (issue #20, contract §7): a real beat is stopped across several due times of four
entries and started again; the ``once`` entries run exactly once, the ``skip`` entries not at all, and
every ``next_run_at`` is in the future (a skipped interval entry on its grid of regular times). The
policy is shown by the admin API and the console."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis
from celery.schedules import crontab
from redbeat import RedBeatSchedulerEntry
from sqlalchemy import select

from questboard.cli import beat_argv
from questboard.testing import ManagedProcess, wait_for
from shared.db import get_sessionmaker
from shared.models import Job
from tests.integration.helpers_app import log_in
from workers.celery_app import make_celery

EVERY = timedelta(minutes=1)
# name -> (schedule, catch_up, the probe's steps that tell its runs apart)
ENTRIES = {
    "every-minute-once": (EVERY, "once", 11),
    "every-minute-skip": (EVERY, "skip", 12),
    "cron-once": (crontab(minute="*"), "once", 13),
    "cron-skip": (crontab(minute="*"), "skip", 14),
}


def runs(settings, since: datetime) -> dict[int, int]:
    """Probe runs created since ``since``, counted by their ``steps``."""
    with get_sessionmaker(settings.resolved_database_url)() as db:
        jobs = db.scalars(select(Job).where(Job.type == "diagnostics.probe", Job.created_at >= since))
        counts: dict[int, int] = {}
        for job in jobs:
            counts[job.params["steps"]] = counts.get(job.params["steps"], 0) + 1
        return counts


def broker_idle(settings) -> bool:
    """Nothing waits in the queue beat sends to, and the worker holds no message it has not finished."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        return client.llen("high") == 0 and client.hlen("unacked") == 0
    finally:
        client.close()


def listed(client, admin) -> dict[str, dict]:
    resp = client.get("/api/admin/recurring", headers=admin.headers)
    assert resp.status_code == 200
    return {t["name"]: t for t in resp.get_json()}


def at(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


def test_missed_runs_run_once_or_are_skipped_as_each_entry_declares(
    client, accounts, admin, settings, env, tmp_path, worker
):
    app = make_celery(settings)
    for name, (every, catch_up, steps) in ENTRIES.items():
        RedBeatSchedulerEntry(
            name,
            "questboard.recurring",
            every,
            args=["diagnostics.probe", {"steps": steps}],
            options={"queue": "high", "catch_up": catch_up},
            app=app,
        ).save()
    beat = ManagedProcess("beat-1", beat_argv(settings.instance_dir), env, tmp_path)
    beat.start()
    try:
        wait_for(lambda: "Acquired lock" in beat.output(), 30, what="beat to lead")
        beat.stop(timeout_s=10)
        # Beat was down for five minutes: each entry missed five regular times.
        down_since = datetime.now(UTC) - timedelta(minutes=5, seconds=10)
        for name in ENTRIES:
            entry = RedBeatSchedulerEntry.from_key(RedBeatSchedulerEntry.generate_key(app, name), app)
            entry.reschedule(down_since)
        restarted = datetime.now(UTC)
        beat = ManagedProcess("beat-2", beat_argv(settings.instance_dir), env, tmp_path)
        beat.start()
        # The once entries run at start-up, in beat's first tick (the skip entries were decided before it).
        wait_for(lambda: runs(settings, restarted).keys() >= {11, 13}, 40, what="the once entries' runs")
        wait_for(lambda: broker_idle(settings), 20, what="every sent run to be taken")
        tasks = listed(client, admin)
        now = datetime.now(UTC)
        for name in ENTRIES:
            assert at(tasks[name]["next_run_at"]) > now - timedelta(seconds=1), tasks[name]
            assert tasks[name]["catch_up"] == ENTRIES[name][1]
        # The skipped interval entry stays on its grid: down_since + n minutes, within the next minute.
        skipped_next = at(tasks["every-minute-skip"]["next_run_at"])
        assert timedelta(0) < skipped_next - now <= EVERY, tasks["every-minute-skip"]
        off_grid_s = (skipped_next - down_since).total_seconds() % 60
        assert min(off_grid_s, 60 - off_grid_s) < 0.5, (skipped_next, down_since)
        # The skipped crontab entry waits for the next minute.
        cron_next = at(tasks["cron-skip"]["next_run_at"])
        on_minute = abs(cron_next.timestamp() - round(cron_next.timestamp() / 60) * 60) < 0.5
        assert on_minute and timedelta(0) < cron_next - now <= EVERY, tasks["cron-skip"]
        # The once entries ran once: their next run is a period after that run, not now again.
        assert at(tasks["every-minute-once"]["next_run_at"]) - now > EVERY - timedelta(seconds=10)
        assert runs(settings, restarted) == {11: 1, 13: 1}, runs(settings, restarted)
        assert "runs missed while beat was down are skipped" in beat.output()

        log_in(client, accounts, admin)
        page = client.get("/admin").get_data(as_text=True)
        assert "missed runs: skipped" in page and "missed runs: run once" in page
    finally:
        beat.stop(timeout_s=10)
