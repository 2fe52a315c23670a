"""The security suite's world: three people, their jobs and records, and clients for every role.

``World`` builds what a request may be aimed at (a queued job, a failed one, a finished export, a
character) through the real services, and hands out a client per role: anonymous, the owner of those
records (alice), another user (bob) and an admin. API roles use bearer tokens; page roles a session made
by a real magic link.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from shared.accounts import Accounts
from shared.db import get_sessionmaker
from shared.flagship.exports import export_path
from shared.models import Character
from shared.settings import Settings
from tests.integration.test_admin_support import run_and_fail, run_and_succeed

ROLES = ("anonymous", "owner", "other", "admin")
PROBE = "diagnostics.probe"
WEBHOOK_SOURCE = "github"
WEBHOOK_SECRET = "whsec-SecuritySuite-7f3a9c"
PARTY_CSV = b"name,race,char_class,level\nMira,Elf,Wizard,3\n"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def log_in(client: FlaskClient, accounts: Accounts, user: Any) -> FlaskClient:
    """Give the client a session through a real magic link."""
    link = accounts.create_magic_link(user, "http://localhost")
    response = client.get(link.removeprefix("http://localhost"))
    assert response.status_code == 302, response.status_code
    return client


def csrf_from(client: FlaskClient, path: str) -> str:
    """A CSRF token from a form on ``path``, valid for this client's session."""
    html = client.get(path).get_data(as_text=True)
    match = CSRF_FIELD.search(html)
    assert match, f"no CSRF token in the forms of {path}"
    return match.group(1)


class World:
    def __init__(self, app: Flask, settings: Settings, accounts: Accounts, people: dict[str, Any]) -> None:
        self.app = app
        self.settings = settings
        self.accounts = accounts
        self.people = people  # role -> tests.conftest.Person (no anonymous)
        self.api = app.test_client()  # bearer requests only: it never gets a session
        self._pages: dict[str, FlaskClient] = {}

    # ----- credentials ----------------------------------------------------------------------------

    def headers(self, role: str) -> dict[str, str]:
        return {} if role == "anonymous" else dict(self.people[role].headers)

    def page_client(self, role: str, fresh: bool = False) -> FlaskClient:
        """A client with the role's session (anonymous: none); one per role unless ``fresh``."""
        if fresh or role not in self._pages:
            client = self.app.test_client()
            if role != "anonymous":
                log_in(client, self.accounts, self.people[role].user)
            if fresh:
                return client
            self._pages[role] = client
        return self._pages[role]

    def csrf(self, client: FlaskClient) -> str:
        """A valid CSRF token of the client's session (read from a form once, then kept on the client)."""
        token = getattr(client, "questboard_csrf", None)
        if token is None:
            logged_in = client.get("/login").status_code == 302
            token = csrf_from(client, "/" if logged_in else "/login")
            client.questboard_csrf = token  # type: ignore[attr-defined]
        return token

    # ----- things to aim at (the owner's) ------------------------------------------------------------

    def new_job(self, job_type: str = PROBE, params: dict[str, Any] | None = None) -> str:
        """A fresh queued job of the owner (nothing runs it: the suite starts no worker unless it says so)."""
        response = self.api.post(
            "/api/jobs", json={"type": job_type, "params": params or {}}, headers=self.headers("owner")
        )
        assert response.status_code == 202, response.get_json()
        return response.get_json()["id"]

    def failed_job(self) -> str:
        """A fresh job of the owner in the dead-letter set."""
        job_id = self.new_job()
        run_and_fail(self.settings, job_id)
        return job_id

    @cached_property
    def job_id(self) -> str:
        return self.new_job()

    @cached_property
    def export_job_id(self) -> str:
        """A finished export of the owner with its file on disk."""
        job_id = self.new_job("report.export", {"kind": "jobs", "format": "csv"})
        run_and_succeed(self.settings, job_id)
        path = export_path(self.settings.instance_dir, job_id, "csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("id,type\n")
        return job_id

    @cached_property
    def character_id(self) -> str:
        with get_sessionmaker(self.settings.resolved_database_url)() as session:
            character = Character(
                user_id=self.people["owner"].user.id, name="Mira", race="Elf", char_class="Wizard", level=3
            )
            session.add(character)
            session.commit()
            return character.id
