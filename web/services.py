"""The core services a web process uses, built once per app from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from shared.accounts import Accounts
from shared.jobs import JobService
from shared.jobtypes import JobType
from shared.publisher import SocketIOPublisher
from shared.settings import Settings


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
        from workers.jobs import REGISTRY

        url = settings.resolved_database_url
        jobs = JobService(
            url,
            REGISTRY,
            SocketIOPublisher(settings.redis_url),
            CeleryDispatcher(make_celery(settings)),
            user_job_limit=settings.user_job_limit,
        )
        return cls(settings=settings, accounts=Accounts(url), jobs=jobs, registry=REGISTRY)


def services() -> Services:
    return current_app.extensions["questboard"]
