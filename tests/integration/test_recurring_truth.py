"""Recurring tasks tell the truth (contract §7): a real beat and a real worker run every recurring task
with no error line or traceback, and ``next_run_at`` follows the schedule and the last run, never in the
past, after several runs and after a beat restart; runs missed while beat was down run once, not N times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redbeat import RedBeatSchedulerEntry
from sqlalchemy import select

from questboard.cli import beat_argv
from questboard.testing import ManagedProcess, wait_for
from shared.db import get_sessionmaker
from shared.models import Job
from tests.integration.helpers_app import wait_finished
from workers.celery_app import make_celery

# The installation's schedule (celeryconfig.beat_schedule), restated as a person reads it.
CRON = {"cleanup-magic-links": (5, None), "cleanup-events": (15, 3), "cleanup-retention": (30, 3)}
INTERVAL = {"cleanup-stale-jobs": timedelta(minutes=10)}
TOLERANCE_S = 2.0


def cron_times(now: datetime, minute: int, hour: int | None, step: int) -> datetime:
    """The first minute from ``now`` (going forward with step 1, backward with -1) matching the entry."""
    t = now.replace(second=0, microsecond=0) + (timedelta(minutes=1) if step > 0 else timedelta(0))
    while not (t.minute == minute and (hour is None or t.hour == hour)):
        t += timedelta(minutes=step)
    return t


def listed(client, admin) -> dict[str, dict]:
    resp = client.get("/api/admin/recurring", headers=admin.headers)
    assert resp.status_code == 200, resp.get_json()
    return {t["name"]: t for t in resp.get_json()}


def at(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


def check_schedule(client, admin, last_interval_run: dict[str, datetime]) -> dict[str, dict]:
    """Every configured entry's next_run_at is in the future and where its schedule puts it."""
    now = datetime.now(UTC)
    tasks = listed(client, admin)
    for name, (minute, hour) in CRON.items():
        got = at(tasks[name]["next_run_at"])
        want = cron_times(now, minute, hour, 1)
        assert abs((got - want).total_seconds()) <= TOLERANCE_S, (name, got, want)
    for name, every in INTERVAL.items():
        got = at(tasks[name]["next_run_at"])
        want = max(now, last_interval_run[name] + every)
        assert abs((got - want).total_seconds()) <= TOLERANCE_S, (name, got, want)
    for name in (*CRON, *INTERVAL):
        assert at(tasks[name]["next_run_at"]) >= now - timedelta(seconds=1), tasks[name]
    return tasks


def seed(app, name: str, last_run_at: datetime) -> None:
    """Store the configured entry with a last run, as beat leaves it after running it then."""
    entry = RedBeatSchedulerEntry(name=name, app=app, **app.conf.beat_schedule[name])
    entry.save()
    entry.reschedule(last_run_at)


def jobs_of(settings, job_type: str, since: datetime | None = None) -> list[Job]:
    with get_sessionmaker(settings.resolved_database_url)() as db:
        query = select(Job).where(Job.type == job_type)
        if since is not None:
            query = query.where(Job.created_at >= since)
        return list(db.scalars(query))


def no_errors(*procs: ManagedProcess) -> None:
    for proc in procs:
        out = proc.output()
        bad = [x for x in out.splitlines() if '"level": "error"' in x.lower() or x.startswith("Traceback")]
        bad += [x for x in out.splitlines() if "KeyError" in x or "ERROR/" in x]
        assert not bad, (proc.name, bad[:5])


def test_every_recurring_run_is_clean_and_next_run_follows_the_schedule(
    client, admin, settings, env, tmp_path, worker
):
    app = make_celery(settings)
    now = datetime.now(UTC)
    # Beat ran each entry a while ago (the cron ones at their last time): RedBeat's due_at would be early.
    last = {"cleanup-stale-jobs": now - timedelta(minutes=3)}
    seed(app, "cleanup-stale-jobs", last["cleanup-stale-jobs"])
    for name, (minute, hour) in CRON.items():
        seed(app, name, cron_times(now, minute, hour, -1) + timedelta(seconds=1))
    # And one entry of our own that beat runs every 2 s.
    RedBeatSchedulerEntry(
        "probe-every-2s",
        "questboard.recurring",
        timedelta(seconds=2),
        args=["diagnostics.probe"],
        options={"queue": "high"},
        app=app,
    ).save()

    beat = ManagedProcess("beat-1", beat_argv(settings.instance_dir), env, tmp_path)
    beat.start()
    try:
        wait_for(lambda: "Acquired lock" in beat.output(), 30, what="beat to lead")
        check_schedule(client, admin, last)

        # Run every recurring task now, as an operator does from the console.
        types = {}
        for name in (*CRON, *INTERVAL):
            resp = client.post(f"/api/admin/recurring/{name}/run", headers=admin.headers)
            assert resp.status_code in (200, 202), resp.get_json()
            types[name] = app.conf.beat_schedule[name]["args"][0]
        for job_type in types.values():
            run = wait_for(lambda t=job_type: jobs_of(settings, t), 20, what=f"a {job_type} run")[0]
            assert wait_finished(client, admin, run.id)["status"] == "succeeded"

        # Several scheduled runs of the 2 s entry; its next run is its last run + 2 s (or now when due).
        wait_for(lambda: len(jobs_of(settings, "diagnostics.probe")) >= 3, 30, what="3 scheduled runs")
        probe = listed(client, admin)["probe-every-2s"]
        read_at = datetime.now(UTC)
        want = max(read_at, at(probe["last_run_at"]) + timedelta(seconds=2))
        assert abs((at(probe["next_run_at"]) - want).total_seconds()) <= 1.0, (probe, read_at)
        check_schedule(client, admin, last)  # running them now did not move the schedules
        no_errors(beat, worker)

        # Beat is down for over an hour's worth of stale-jobs runs (6 missed): on start it runs once.
        beat.stop(timeout_s=10)
        RedBeatSchedulerEntry.from_key(
            RedBeatSchedulerEntry.generate_key(app, "probe-every-2s"), app
        ).delete()
        missed_since = datetime.now(UTC) - timedelta(minutes=65)
        seed(app, "cleanup-stale-jobs", missed_since)
        restarted = datetime.now(UTC)
        beat = ManagedProcess("beat-2", beat_argv(settings.instance_dir), env, tmp_path)
        beat.start()
        runs = wait_for(lambda: jobs_of(settings, "cleanup.stale_jobs", restarted), 40, what="the missed run")
        ran_at = runs[0].created_at
        # Beat would send the others at once if it caught up; give it a few loops to prove it does not.
        deadline = datetime.now(UTC) + timedelta(seconds=4)
        wait_for(lambda: datetime.now(UTC) >= deadline, 6, 0.2, what="a few beat loops")
        assert len(jobs_of(settings, "cleanup.stale_jobs", restarted)) == 1
        tasks = check_schedule(
            client,
            admin,
            {"cleanup-stale-jobs": at(listed(client, admin)["cleanup-stale-jobs"]["last_run_at"])},
        )
        assert at(tasks["cleanup-stale-jobs"]["next_run_at"]) - ran_at >= timedelta(minutes=9), tasks
        no_errors(beat, worker)
    finally:
        beat.stop(timeout_s=10)
