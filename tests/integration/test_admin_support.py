"""Helpers for the operations tests (no tests here): real jobs driven through the real lifecycle."""

from __future__ import annotations

import re
from typing import Any

from shared.accounts import Accounts
from shared.admin import grant_viewer
from shared.errors import PermanentError
from shared.jobtypes import RetryPolicy
from shared.lifecycle import Lifecycle
from shared.publisher import NullPublisher
from shared.settings import Settings

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PROBE = "diagnostics.probe"


class Viewer:
    """A read-only operator with an API token (like ``tests.conftest.Person``)."""

    def __init__(self, accounts: Accounts, settings: Settings, email: str = "viewer@example.com") -> None:
        user = accounts.ensure_user(email)
        self.user = grant_viewer(settings.resolved_database_url, user.id)
        self.token = accounts.issue_api_token(self.user)
        self.headers = {"Authorization": f"Bearer {self.token}"}


def submit(client: Any, person: Any, queue: str | None = None, **params: Any) -> str:
    body: dict[str, Any] = {"type": PROBE, "params": params}
    if queue:
        body["queue"] = queue
    response = client.post("/api/jobs", json=body, headers=person.headers)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def lifecycle(settings: Settings) -> Lifecycle:
    from workers.celery_app import make_celery
    from workers.dispatch import CeleryDispatcher

    return Lifecycle(settings.resolved_database_url, NullPublisher(), CeleryDispatcher(make_celery(settings)))


def run_and_fail(settings: Settings, job_id: str, message: str = "broken on purpose") -> None:
    """Claim the job as a worker would and fail its run with a permanent error: it lands in failed."""
    lc = lifecycle(settings)
    job = lc.claim(job_id, "test-worker@host")
    assert job is not None
    try:
        raise PermanentError(message)
    except PermanentError as exc:
        lc.fail_attempt(job_id, job.attempts, exc, RetryPolicy())


def run_and_succeed(settings: Settings, job_id: str) -> None:
    lc = lifecycle(settings)
    job = lc.claim(job_id, "test-worker@host")
    assert job is not None
    lc.succeed(job_id, job.attempts, {"ok": True})


def log_in(client: Any, accounts: Accounts, user: Any) -> None:
    """Give the test client a session through a real magic link."""
    link = accounts.create_magic_link(user, "http://localhost")
    assert client.get(link.removeprefix("http://localhost")).status_code == 302


def csrf_token(client: Any, path: str = "/") -> str:
    """A CSRF token from a page the client's user may see."""
    html = client.get(path).get_data(as_text=True)
    match = CSRF.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)
