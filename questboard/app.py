"""The composition root: the one place that wires Questboard's services together.

Settings give the database and Redis; from them come the publisher (Socket.IO through Redis), the
dispatcher (Celery's ``send_task``), the registry of job types, and the services built on those. Every
role takes its services from here: the web (``build`` once per Flask app, ``web.services``), the workers
and the CLI (``current``: this process's, from its environment), the pytest plugin (``build`` with the
test's settings). Nothing below this package builds a publisher, a dispatcher or a registry itself.

The flagship application (``*/flagship/``) is registered here too: its job types (``job_types``) and its
web endpoints (``web_applications``); the platform never imports it.

Layers (tests/unit/test_layering.py): ``shared`` is imported here at module level; ``workers`` and
``web`` only inside the functions that need Celery, the job catalog or the application, because both
import this module: importing it never imports Celery or Flask and never cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from typing import TYPE_CHECKING

from shared.accounts import Accounts
from shared.admin import Operations
from shared.deadletters import DeadLetters
from shared.dispatch import Dispatcher
from shared.jobs import JobService
from shared.jobtypes import JobType
from shared.lifecycle import Lifecycle
from shared.publisher import Publisher, SocketIOPublisher
from shared.settings import Settings, get_settings
from shared.system import SystemJobs
from shared.workflows.service import Workflows

if TYPE_CHECKING:
    from celery import Celery
    from flask import Flask

    from workers.recurring import RecurringTasks


@dataclass(eq=False)
class Questboard:
    """One installation's services, built on first use from the same settings, publisher and dispatcher."""

    settings: Settings
    registry: Mapping[str, JobType]
    publisher: Publisher
    dispatcher: Dispatcher
    celery: Celery

    @property
    def database_url(self) -> str:
        return self.settings.resolved_database_url

    @cached_property
    def accounts(self) -> Accounts:
        return Accounts(self.database_url)

    @cached_property
    def jobs(self) -> JobService:
        """Submits, lists and cancels for people, under the per-user limits of the settings."""
        jobs = JobService(
            self.database_url,
            self.registry,
            self.publisher,
            self.dispatcher,
            user_job_limit=self.settings.user_job_limit,
            user_queued_limit=self.settings.user_queued_limit,
        )
        # A canceled step releases or cancels what waited on it.
        jobs.machine.after_final(self._settle, steps_only=True)
        return jobs

    @cached_property
    def system(self) -> SystemJobs:
        """Submits the system user's jobs (webhook processing, mails, cleanups)."""
        return SystemJobs(self.database_url, self.registry, self.publisher, self.dispatcher)

    @cached_property
    def workflows(self) -> Workflows:
        """Workflows of people's jobs (contract §8): create, get, cancel, and steps that add steps."""
        return Workflows(self.database_url, self.jobs)

    @cached_property
    def lifecycle(self) -> Lifecycle:
        """A job's run as the worker records it (claim, progress, outcome)."""
        lifecycle = Lifecycle(self.database_url, self.publisher, self.dispatcher)
        # A step that ended releases what waited on it.
        lifecycle.machine.after_final(self._settle, steps_only=True)
        return lifecycle

    def _settle(self, job_ids: list[str]) -> None:
        """The workflows' after-final hook (the steps that ended: a job of no workflow costs nothing). A
        lost one is caught up by the workflows' maintenance sweep."""
        self.workflows.settler.settle(job_ids)

    @cached_property
    def operations(self) -> Operations:
        """The operators' actions (console, admin API, CLI), dead letters included."""
        dead = DeadLetters(self.database_url, dict(self.registry), self.publisher, self.dispatcher)
        return Operations(self.database_url, self.settings.redis_url, dead)

    @cached_property
    def recurring(self) -> RecurringTasks:
        """RedBeat's recurring tasks, read with this installation's Celery configuration."""
        from workers.recurring import RecurringTasks

        return RecurringTasks(self.celery)


def job_types(modules: str | None = None, time_limits: str | None = None) -> dict[str, JobType]:
    """The registry: the platform's types, the flagship application's, those of ``modules``
    (QUESTBOARD_JOB_MODULES), with the ``time_limits`` overrides (QUESTBOARD_TIME_LIMITS). The
    application is registered here, and only here: the platform never imports it."""
    from workers.flagship import JOBS as FLAGSHIP_JOBS
    from workers.jobs import build_registry

    return build_registry(modules, time_limits, FLAGSHIP_JOBS)


@cache
def registry() -> dict[str, JobType]:
    """This process's registry, from its environment: the one the worker registers its tasks from."""
    settings = get_settings()
    return job_types(settings.job_modules, settings.time_limits)


def web_applications() -> list[Callable[[Flask], None]]:
    """What ``create_app`` installs beside the platform's own pages: the flagship's endpoints."""
    from web import flagship

    return [flagship.init_app]


def build(
    settings: Settings, *, celery: Celery | None = None, registry: Mapping[str, JobType] | None = None
) -> Questboard:
    """The services of ``settings``; ``celery`` and ``registry`` default to new ones made from them."""
    from workers import job_logging  # noqa: F401  (log lines for every job submitted or run here)
    from workers.celery_app import make_celery
    from workers.dispatch import CeleryDispatcher, pools_of

    celery = celery if celery is not None else make_celery(settings)
    if registry is None:
        registry = job_types(settings.job_modules, settings.time_limits)
    return Questboard(
        settings=settings,
        registry=registry,
        publisher=SocketIOPublisher(settings.redis_url),
        dispatcher=CeleryDispatcher(celery, pools_of(registry)),
        celery=celery,
    )


@cache
def current() -> Questboard:
    """This process's services, from its environment (``get_settings``), with the process's own Celery
    app and registry (the ones the worker's tasks are registered from). Built on first use: in a worker,
    after the pool forks."""
    from workers.celery_app import celery_app

    return build(get_settings(), celery=celery_app, registry=registry())
