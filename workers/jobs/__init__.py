"""The platform's own job types (one module each, one line here) and how a registry is assembled.

The composition root (questboard.app) builds the registry: these types, the application's (the flagship's
``workers.flagship.JOBS``), and those of ``QUESTBOARD_JOB_MODULES`` (comma-separated module paths, each
defining ``JOB`` or ``JOBS``: an application's own jobs or test-only types; web and workers must see the
same value).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from shared.jobtypes import JobType
from shared.timelimits import apply_time_limits
from workers.jobs import (
    cleanup_events,
    cleanup_magic_links,
    cleanup_retention,
    cleanup_stale_jobs,
    login_mail,
    mail_deliver,
    probe,
)

BUILTIN: tuple[JobType, ...] = (
    probe.JOB,
    mail_deliver.JOB,
    login_mail.JOB,
    cleanup_magic_links.JOB,
    cleanup_events.JOB,
    cleanup_stale_jobs.JOB,
    cleanup_retention.JOB,
)


def load_extra(modules: str | None) -> list[JobType]:
    """Job types from the modules named in ``modules`` (comma-separated)."""
    found: list[JobType] = []
    for name in filter(None, (m.strip() for m in (modules or "").split(","))):
        module = importlib.import_module(name)
        found.extend(getattr(module, "JOBS", None) or [module.JOB])
    return found


def build_registry(
    modules: str | None = None, time_limits: str | None = None, application: Iterable[JobType] = ()
) -> dict[str, JobType]:
    """The built-in types, the ``application``'s and those of ``modules``, with the
    ``QUESTBOARD_TIME_LIMITS`` overrides of ``time_limits`` applied (TimeLimitsError for a bad one)."""
    specs = (*BUILTIN, *application, *load_extra(modules))
    return apply_time_limits({spec.name: spec for spec in specs}, time_limits)
