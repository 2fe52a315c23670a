"""The system user: the owner of work nobody in particular asked for.

Webhook processing, login mails and recurring cleanups are jobs like any other, so they need an owner.
They belong to ``system@questboard.local``, created on demand. Admins see its jobs like everyone's; the
system user never logs in (nothing mails it a link it could read).

Its submissions may name internal job types (``system=True``) and do not share the per-user limits on
active and waiting jobs meant for people: a burst of webhooks must
not be refused because ten cleanups are queued. ``SYSTEM_JOB_LIMIT`` is the safety net instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.accounts import Accounts
from shared.dispatch import Dispatcher
from shared.jobs import JobService
from shared.jobtypes import JobType
from shared.models import User
from shared.publisher import Publisher

SYSTEM_EMAIL = "system@questboard.local"
# Active jobs the system user may have at once (the per-user limit for people is much lower).
SYSTEM_JOB_LIMIT = 10_000


class SystemJobs:
    """Submits jobs owned by the system user."""

    def __init__(
        self,
        database_url: str,
        registry: Mapping[str, JobType],
        publisher: Publisher,
        dispatcher: Dispatcher,
    ) -> None:
        self.accounts = Accounts(database_url)
        self.jobs = JobService(
            database_url,
            registry,
            publisher,
            dispatcher,
            user_job_limit=SYSTEM_JOB_LIMIT,
            user_queued_limit=SYSTEM_JOB_LIMIT,
        )
        self._user: User | None = None

    def user(self) -> User:
        """The system user, created on first use."""
        if self._user is None:
            self._user = self.accounts.ensure_user(SYSTEM_EMAIL)
        return self._user

    def submit(
        self,
        job_type: str,
        params: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        run_at: datetime | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Submit a job owned by the system user; returns (job, created) like ``JobService.submit``.

        This is the system's own path: internal types are allowed here (and only here, besides admins).
        """
        return self.jobs.submit(
            self.user(), job_type, params, idempotency_key=idempotency_key, run_at=run_at, system=True
        )
