"""What happens to the runs of a recurring entry that were missed while no beat led (catch-up).

Each entry declares it in its options, ``"catch_up": "once" | "skip"`` (default ``once``):

- ``once``: RedBeat's own behaviour. An overdue entry is due now and runs once, however many times were
  missed; its next run is one period after that run (a crontab entry: its next time).
- ``skip``: when a beat takes the lead, an overdue entry is moved on to its latest regular time, so nothing
  runs now and the next run is at the next regular time (an interval entry stays on its grid of last run +
  n x interval; a crontab entry waits for its next time).

The option is beat's, not the task's: ``send_options`` leaves it out of what is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from celery.schedules import schedule
from redbeat import RedBeatSchedulerEntry

log = logging.getLogger("questboard.recurring")

OPTION = "catch_up"
POLICIES = ("once", "skip")
DEFAULT = "once"


def catch_up_of(options: Mapping[str, Any] | None) -> str:
    """The entry's policy as declared (``once`` when it declares none)."""
    return str((options or {}).get(OPTION, DEFAULT))


def check_catch_up(name: str, options: Mapping[str, Any] | None) -> None:
    """ValueError naming the entry when its policy is neither ``once`` nor ``skip`` (beat will not start)."""
    if catch_up_of(options) not in POLICIES:
        raise ValueError(
            f"recurring entry {name!r}: catch_up must be one of {', '.join(POLICIES)}, "
            f"not {catch_up_of(options)!r}"
        )


def send_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options to send the task with (without the catch-up policy)."""
    return {k: v for k, v in (options or {}).items() if k != OPTION}


def latest_regular_time(entry: RedBeatSchedulerEntry, last: datetime, now: datetime) -> datetime:
    """The entry's last regular time at or before ``now``, counted from its last run ``last``."""
    if isinstance(entry.schedule, schedule) and entry.schedule.run_every.total_seconds() > 0:
        every = entry.schedule.run_every
        return last + every * ((now - last) // every)
    return now  # a crontab: its next time after now is its next regular time


def skip_missed(entries: list[RedBeatSchedulerEntry], now: datetime | None = None) -> list[str]:
    """Move every active, overdue ``skip`` entry on to its latest regular time; their names."""
    now = now or datetime.now(UTC)
    skipped = []
    for entry in entries:
        if not entry.enabled or entry.last_run_at is None or catch_up_of(entry.options) != "skip":
            continue
        last = entry.last_run_at if entry.last_run_at.tzinfo else entry.last_run_at.replace(tzinfo=UTC)
        remaining = entry.schedule.remaining_estimate(last)
        if remaining is None or remaining.total_seconds() > 0:
            continue  # no further runs, or not missed
        entry.reschedule(latest_regular_time(entry, last, now))
        skipped.append(entry.name)
        log.info("recurring %s: runs missed while beat was down are skipped", entry.name)
    return skipped
