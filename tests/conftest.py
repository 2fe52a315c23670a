"""Fixtures with real parts: a private redis-server, real SQLite/PostgreSQL, real Celery workers."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from questboard.testing import (
    ManagedProcess,
    RedisServer,
    http_ok,
    questboard_env,
    wait_for,
    wait_worker_ready,
    web_process,
    worker_process,
)
from shared.accounts import Accounts
from shared.db import upgrade
from shared.settings import Settings
from tests.ordering import DurationRecorder, order_by_cost


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller (or a serial run) sees every file's reports
        config.pluginmanager.register(DurationRecorder(config), "questboard-file-durations")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    order_by_cost(config, items)


PG_ADMIN_URL = os.environ.get("QUESTBOARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


_pg_state: dict[str, str | None] = {}


def _pg_available() -> str | None:
    """None when PostgreSQL answers; else why not (asked once per run)."""
    if "problem" not in _pg_state:
        try:
            import psycopg

            with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            _pg_state["problem"] = None
        except Exception as exc:  # any failure means: no PostgreSQL for this run
            _pg_state["problem"] = f"{type(exc).__name__}: {exc}"
    return _pg_state["problem"]


def _create_database(name: str, template: str | None = None) -> None:
    import psycopg

    sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")

    def attempt() -> bool:
        try:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(sql)
            return True
        except psycopg.errors.ObjectInUse:  # the template busy with a concurrent CREATE DATABASE
            return False

    wait_for(attempt, 30, 0.2, what=f"CREATE DATABASE {name}")


def _pg_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}"


def _forget_engine(url: str) -> None:
    from shared.db import _engines, _sessionmakers

    engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()
    _sessionmakers.pop(url, None)


def _drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A database migrated to head once per test process; each test gets a fresh copy of it.

    Copying a template (CREATE DATABASE ... TEMPLATE) is much faster than running every migration again,
    and gives the same schema: the same way sqlite_template serves the SQLite tests.
    """
    problem = _pg_available()
    if problem:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL} ({problem})")
    name = f"qb_template_{uuid.uuid4().hex[:12]}"
    _create_database(name)
    url = _pg_url(name)
    upgrade(url)
    _forget_engine(url)  # no connection may stay open on a template that is being copied
    yield name
    _drop_database(name)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "questboard.sqlite3"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    name = f"qb_test_{uuid.uuid4().hex[:12]}"
    _create_database(name, template=postgres_template)
    url = _pg_url(name)
    yield url
    _forget_engine(url)
    _drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Both databases, for the tests that must hold on each."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """The embedded default (SQLite) for tests that do not need to run on both."""
    return sqlite_url


@pytest.fixture
def instance_dir(tmp_path: Path) -> Path:
    path = tmp_path / "instance"
    path.mkdir()
    return path


@pytest.fixture
def settings(redis_url: str, db_url: str, instance_dir: Path) -> Settings:
    return Settings(
        redis_url=redis_url, database_url=db_url, instance_dir=instance_dir, secret_key="test-secret"
    )


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return questboard_env(
        settings.redis_url, settings.resolved_database_url, settings.instance_dir, SECRET_KEY="test-secret"
    )


@pytest.fixture
def accounts(settings: Settings) -> Accounts:
    return Accounts(settings.resolved_database_url)


@pytest.fixture
def app(settings: Settings):
    from web import create_app

    return create_app(settings, TESTING=True)


@pytest.fixture
def client(app):
    return app.test_client()


class Person:
    def __init__(self, accounts: Accounts, email: str, admin: bool = False) -> None:
        self.user = accounts.ensure_user(email, admin=admin)
        self.token = accounts.issue_api_token(self.user)
        self.headers = {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def alice(accounts: Accounts) -> Person:
    return Person(accounts, "alice@example.com")


@pytest.fixture
def bob(accounts: Accounts) -> Person:
    return Person(accounts, "bob@example.com")


@pytest.fixture
def admin(accounts: Accounts) -> Person:
    return Person(accounts, "ops@example.com", admin=True)


@pytest.fixture
def start_worker(env: dict[str, str], tmp_path: Path, settings: Settings):
    """Start real Celery workers: ``start_worker(queues=..., concurrency=...)``; all stopped at the end."""
    started: list[ManagedProcess] = []

    def start(
        queues: str = "critical,high,default,low", concurrency: int = 2, **kw: object
    ) -> ManagedProcess:
        proc = worker_process(env, tmp_path, queues=queues, concurrency=concurrency, **kw)  # type: ignore[arg-type]
        started.append(proc)
        proc.start()
        wait_worker_ready(proc, settings.redis_url)
        return proc

    yield start
    for proc in started:
        proc.kill()  # the test is over: no graceful stop (ManagedProcess.kill)


@pytest.fixture
def worker(start_worker) -> ManagedProcess:
    return start_worker()


@pytest.fixture
def live_server(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """The real web server (gunicorn + Socket.IO) on a free port; yields its base URL."""
    proc, base_url = web_process(env, tmp_path)
    proc.start()
    try:
        wait_for(
            lambda: http_ok(base_url + "/healthz") or (not proc.alive() and _raise(proc)),
            20,
            what="web server",
        )
        yield base_url
    finally:
        proc.kill()  # the test is over: no graceful stop (ManagedProcess.kill)


def _raise(proc: ManagedProcess) -> bool:
    raise RuntimeError(f"{proc.name} exited:\n{proc.output()[-3000:]}")
