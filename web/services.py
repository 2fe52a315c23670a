"""The core services a web process uses, built once per app from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

from shared.accounts import Accounts
from shared.jobs import JobService
from shared.jobtypes import JobType
from shared.publisher import SocketIOPublisher
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.admin import Operations
    from workers.recurring import RecurringTasks


@dataclass
class Services:
    settings: Settings
    accounts: Accounts
    jobs: JobService
    registry: dict[str, JobType]

    @classmethod
    def build(cls, settings: Settings) -> Services:
        from workers.celery_app import make_celery
        from workers.dispatch import CeleryDispatcher
        from workers.jobs import build_registry

        url = settings.resolved_database_url
        registry = build_registry(settings.job_modules, settings.time_limits)
        jobs = JobService(
            url,
            registry,
            SocketIOPublisher(settings.redis_url),
            CeleryDispatcher(make_celery(settings)),
            user_job_limit=settings.user_job_limit,
            user_queued_limit=settings.user_queued_limit,
        )
        return cls(settings=settings, accounts=Accounts(url), jobs=jobs, registry=registry)


def services() -> Services:
    return current_app.extensions["questboard"]


def operations() -> Operations:
    """The operator's services (console, admin API, metrics), built on first use per app."""
    ops = current_app.extensions.get("questboard_ops")
    if ops is None:
        from shared.admin import Operations
        from shared.deadletters import DeadLetters

        svc = services()
        url = svc.settings.resolved_database_url
        dead = DeadLetters(url, svc.registry, svc.jobs.publisher, svc.jobs.dispatcher)
        ops = current_app.extensions["questboard_ops"] = Operations(url, svc.settings.redis_url, dead)
    return ops


def recurring_tasks() -> RecurringTasks:
    """RedBeat's recurring tasks, read with this app's Celery configuration."""
    tasks = current_app.extensions.get("questboard_recurring")
    if tasks is None:
        from workers.celery_app import make_celery
        from workers.recurring import RecurringTasks

        tasks = current_app.extensions["questboard_recurring"] = RecurringTasks(
            make_celery(services().settings)
        )
    return tasks
