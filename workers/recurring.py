"""Recurring tasks (celery-redbeat entries) as operators see them: list, pause, resume, run now.

RedBeat keeps each entry in Redis (``redbeat:<name>``: definition and last run). Beat copies
``beat_schedule`` from ``celeryconfig`` there when it starts; entries it has not copied yet are listed from
the configuration. A pause is the entry's ``enabled`` flag; ``PausableRedBeatScheduler`` keeps it when beat
restarts (plain RedBeat would re-enable a static entry from the configuration).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.schedules import crontab, schedule
from celery.signals import beat_init
from redbeat import RedBeatScheduler, RedBeatSchedulerEntry
from redbeat.schedulers import get_redis

from shared.errors import NotFound
from shared.rolestate import record_beat_lock
from shared.serialize import iso
from workers.catchup import catch_up_of, check_catch_up, send_options, skip_missed


def describe_schedule(value: Any) -> str:
    """A schedule as an operator reads it: ``every 300s`` or a crontab line."""
    if isinstance(value, crontab):
        return " ".join(
            str(getattr(value, f"_orig_{part}"))
            for part in ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
        )
    if isinstance(value, schedule):
        seconds = value.run_every.total_seconds()
        for unit, size in (("h", 3600), ("min", 60)):
            if seconds >= size and seconds % size == 0:
                return f"every {seconds / size:g} {unit}"
        return f"every {seconds:g} s"
    return str(value)


def next_run_at(entry: RedBeatSchedulerEntry, now: datetime | None = None) -> datetime | None:
    """When beat will next send an active entry, from its schedule and its last run; never in the past.

    An interval runs at last run + interval, a crontab at its next time after the last run; an entry that
    is overdue (beat was down, or has not stored it yet) is due now, and beat runs it once, not once per
    missed time. Not RedBeat's ``due_at``: that adds the time left *from now* to the last run, so it is
    early by the time since the last run and drifts between reads.
    """
    now = now or datetime.now(UTC)
    last = entry.last_run_at
    if last is None:
        return now
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    remaining = entry.schedule.remaining_estimate(last)  # from now until the next time after ``last``
    if remaining is None:
        return None  # no further runs
    return max(now, now + remaining)


class RecurringTasks:
    """The installation's recurring tasks, read from and written to RedBeat's Redis keys."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        if not app.conf.get("redbeat_redis_url"):
            app.conf.redbeat_redis_url = app.conf.broker_url  # what beat uses; said, so RedBeat won't warn
        if "redbeat_redis_options" not in app.conf:
            app.conf.redbeat_redis_options = {}

    def _entries(self) -> dict[str, tuple[RedBeatSchedulerEntry, bool]]:
        """Every entry by name, with whether beat has stored it in Redis yet."""
        redis = get_redis(self.app)
        conf = self.app.redbeat_conf
        keys = set(redis.zrange(conf.schedule_key, 0, -1))
        keys |= {RedBeatSchedulerEntry.generate_key(self.app, name) for name in conf.schedule or {}}
        entries = {}
        for key in sorted(keys):
            try:
                entries[key.removeprefix(conf.key_prefix)] = (
                    RedBeatSchedulerEntry.from_key(key, app=self.app),
                    True,
                )
            except KeyError:  # configured, but beat has not stored it yet
                entry = self._configured(key.removeprefix(conf.key_prefix))
                if entry is not None:
                    entries[entry.name] = (entry, False)
        return entries

    def _configured(self, name: str) -> RedBeatSchedulerEntry | None:
        definition = (self.app.redbeat_conf.schedule or {}).get(name)
        if definition is None:
            return None
        # Its last_run_at is "now", as beat will store it: the next run is one period from now.
        return RedBeatSchedulerEntry(name=name, app=self.app, **definition)

    def stored(self) -> list[RedBeatSchedulerEntry]:
        """The entries beat has stored in Redis."""
        return [entry for entry, stored in self._entries().values() if stored]

    def list(self) -> list[dict[str, Any]]:
        """``[{"name", "schedule", "last_run_at", "next_run_at", "paused", "catch_up", "task", "args"}]``."""
        return [self._to_dict(entry, stored) for entry, stored in self._entries().values()]

    @staticmethod
    def _to_dict(entry: RedBeatSchedulerEntry, stored: bool = True) -> dict[str, Any]:
        due = next_run_at(entry) if entry.enabled else None
        return {
            "name": entry.name,
            "schedule": describe_schedule(entry.schedule),
            "last_run_at": iso(entry.last_run_at) if stored else None,
            "next_run_at": iso(due),
            "paused": not entry.enabled,
            "catch_up": catch_up_of(entry.options),
            "task": entry.task,
            "args": list(entry.args or []),
        }

    def get(self, name: str) -> RedBeatSchedulerEntry:
        found = self._entries().get(name)
        if found is None:
            raise NotFound(f"No recurring task {name!r}.")
        return found[0]

    def set_paused(self, name: str, paused: bool) -> dict[str, Any]:
        """Pause or resume an entry; beat skips a paused one (it re-reads entries on every tick)."""
        entry = self.get(name)
        entry.enabled = not paused
        entry.save()
        return self._to_dict(entry)

    def run_now(self, name: str) -> str:
        """Send the entry's task at once, as beat would; its schedule is unchanged. Returns the task id."""
        entry = self.get(name)
        options = send_options(entry.options)
        result = self.app.send_task(entry.task, args=entry.args, kwargs=entry.kwargs, **options)
        return str(result.id)


class PausableRedBeatScheduler(RedBeatScheduler):
    """RedBeat, except that an entry an operator paused stays paused when beat restarts, and that each
    entry's catch-up policy decides what happens to runs missed while no beat led (``workers.catchup``)."""

    _caught_up = False

    def update_from_dict(self, dict_: dict[str, Any]) -> None:
        paused = set()
        for name, definition in dict_.items():
            check_catch_up(name, definition.get("options"))
            try:
                if not RedBeatSchedulerEntry.from_key(
                    self.Entry.generate_key(self.app, name), self.app
                ).enabled:
                    paused.add(name)
            except KeyError:
                continue
        super().update_from_dict(dict_)
        for name in paused:
            entry = RedBeatSchedulerEntry.from_key(self.Entry.generate_key(self.app, name), self.app)
            entry.enabled = False
            entry.save()

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """The first tick runs once this beat leads (beat_init took the lock): skip what ``skip`` entries
        missed before anything is sent."""
        if not self._caught_up:
            self._caught_up = True
            skip_missed(RecurringTasks(self.app).stored())
        return float(super().tick(*args, **kwargs))

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        """Send as RedBeat does, without the catch-up policy among the task's options."""
        entry = self.reserve(entry) if advance else entry
        entry.options = send_options(entry.options)
        return super().apply_async(entry, producer, advance=False, **kwargs)


@beat_init.connect
def note_lock_holder(sender: Any = None, **_kwargs: Any) -> None:
    """Once RedBeat's own beat_init handler (connected before this one) holds the leader lock, note this
    process as its holder: `questboard up` then releases the lock at once if this beat dies, instead of
    the beat it starts again waiting up to ``redbeat_lock_timeout`` for it."""
    scheduler = getattr(sender, "scheduler", None)
    lock = getattr(scheduler, "lock", None)
    token = getattr(getattr(lock, "local", None), "token", None)
    if scheduler is None or token is None:
        return
    try:
        record_beat_lock(get_redis(scheduler.app), scheduler.lock_key, token)
    except Exception:  # best effort: without it a restarted beat just waits for the lock
        pass
