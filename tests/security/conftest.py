"""Fixtures of the security suite: a webhook source, room for many jobs per user, a production-like app."""

from __future__ import annotations

import pytest

from shared.settings import Settings
from tests.security.support import WEBHOOK_SECRET, WEBHOOK_SOURCE, World

JOB_LIMIT = 1000  # the matrix submits many jobs per user; the per-user limit has its own tests


@pytest.fixture
def settings(redis_url, db_url, instance_dir) -> Settings:
    return Settings(
        redis_url=redis_url,
        database_url=db_url,
        instance_dir=instance_dir,
        secret_key="test-secret",
        webhook_secrets=f"{WEBHOOK_SOURCE}:{WEBHOOK_SECRET}",
        user_job_limit=JOB_LIMIT,
    )


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    """The same for real processes (the live server, workers)."""
    return {
        **env,
        "QUESTBOARD_WEBHOOK_SECRETS": f"{WEBHOOK_SOURCE}:{WEBHOOK_SECRET}",
        "QUESTBOARD_USER_JOB_LIMIT": str(JOB_LIMIT),
    }


@pytest.fixture
def app(settings: Settings):
    """The app as production builds it: no TESTING, CSRF on, errors answered (a 500 is a 500)."""
    from web import create_app

    return create_app(settings)


@pytest.fixture
def world(app, settings, accounts, alice, bob, admin) -> World:
    return World(app, settings, accounts, {"owner": alice, "other": bob, "admin": admin})
