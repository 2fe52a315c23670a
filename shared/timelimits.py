"""Per-installation time limits: ``QUESTBOARD_TIME_LIMITS=type:seconds[,type:seconds…]``.

The syntax is checked when the settings are read; the type names when the registry is built, so a typo
stops web and workers at start-up with a message naming it instead of being ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from shared.jobtypes import JobType

MAX_TIME_LIMIT_S = 7 * 24 * 3600


class TimeLimitsError(ValueError):
    """``QUESTBOARD_TIME_LIMITS`` cannot be used; the message says why."""


def parse_time_limits(text: str | None) -> dict[str, int]:
    """``"a.b:30, c.d:600"`` as ``{"a.b": 30, "c.d": 600}``; TimeLimitsError for anything else."""
    limits: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, seconds = item.rpartition(":")
        name = name.strip()
        try:
            value = int(seconds.strip())
        except ValueError:
            value = 0
        if not sep or not name or not 1 <= value <= MAX_TIME_LIMIT_S:
            raise TimeLimitsError(
                f"QUESTBOARD_TIME_LIMITS: {item!r} is not 'type:seconds' with whole seconds from 1 to "
                f"{MAX_TIME_LIMIT_S} (e.g. 'diagnostics.probe:60,report.export:900')"
            )
        if name in limits:
            raise TimeLimitsError(f"QUESTBOARD_TIME_LIMITS names {name!r} twice")
        limits[name] = value
    return limits


def apply_time_limits(registry: Mapping[str, JobType], text: str | None) -> dict[str, JobType]:
    """``registry`` with the overrides of ``text`` applied; TimeLimitsError for an unknown type."""
    limits = parse_time_limits(text)
    unknown = sorted(set(limits) - set(registry))
    if unknown:
        raise TimeLimitsError(
            f"QUESTBOARD_TIME_LIMITS names unknown job types: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(registry))})"
        )
    return {
        name: dataclasses.replace(spec, time_limit_seconds=limits[name]) if name in limits else spec
        for name, spec in registry.items()
    }
