"""The registry of job types: one module each, one line here.

``QUESTBOARD_JOB_MODULES`` (comma-separated module paths, each defining ``JOB`` or ``JOBS``) adds types
from outside this package, e.g. an application's own jobs or test-only types; web and workers must see
the same value.
"""

from __future__ import annotations

import importlib
import os

from shared.jobtypes import JobType
from shared.timelimits import apply_time_limits
from workers.jobs import (
    batch_summary,
    character_generate,
    cleanup_events,
    cleanup_magic_links,
    cleanup_retention,
    cleanup_stale_jobs,
    content_index,
    login_mail,
    mail_deliver,
    probe,
    report_export,
    webhook_process,
)

BUILTIN: tuple[JobType, ...] = (
    character_generate.JOB,
    probe.JOB,
    mail_deliver.JOB,
    login_mail.JOB,
    report_export.JOB,
    webhook_process.JOB,
    content_index.JOB,
    batch_summary.JOB,
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


def build_registry(modules: str | None = None, time_limits: str | None = None) -> dict[str, JobType]:
    """The built-in types plus those of ``modules``, with the ``QUESTBOARD_TIME_LIMITS`` overrides of
    ``time_limits`` applied (TimeLimitsError for a bad one)."""
    return apply_time_limits({spec.name: spec for spec in (*BUILTIN, *load_extra(modules))}, time_limits)


# This process's registry (the worker's, and the web's unless it is built with other settings).
REGISTRY: dict[str, JobType] = build_registry(
    os.environ.get("QUESTBOARD_JOB_MODULES") or None, os.environ.get("QUESTBOARD_TIME_LIMITS") or None
)
