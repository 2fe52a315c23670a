"""The workflow tests' settings and worker environment load their own job types (``jobtypes``)."""

from __future__ import annotations

import pytest

from questboard.testing import questboard_env
from shared.settings import Settings
from tests.integration.workflows.support import JOB_MODULES


@pytest.fixture
def settings(redis_url, db_url, instance_dir) -> Settings:
    return Settings(
        redis_url=redis_url,
        database_url=db_url,
        instance_dir=instance_dir,
        secret_key="test-secret",
        job_modules=JOB_MODULES,
    )


@pytest.fixture
def env(settings) -> dict[str, str]:
    return questboard_env(
        settings.redis_url,
        settings.resolved_database_url,
        settings.instance_dir,
        SECRET_KEY="test-secret",
        QUESTBOARD_JOB_MODULES=JOB_MODULES,
    )
