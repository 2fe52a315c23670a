"""pytest plugin for people who write job types (entry point ``pytest11``: ``questboard``).

In the spirit of Rails' ``assert_enqueued_jobs``/``perform_enqueued_jobs`` and Oban's testing module, with
no eager mode underneath: jobs go through a private redis-server and run on a real Celery worker process.

    def test_greeting(questboard):
        questboard.submit("greet.person", {"name": "Ada"})
        questboard.assert_enqueued("greet.person", params={"name": "Ada"})
        [job] = questboard.perform_enqueued()
        assert job["result"] == {"greeting": "Hello, Ada!"}

Fixtures: ``questboard`` (the kit below), ``questboard_worker`` (a running worker), ``questboard_redis``
(session-wide private redis-server). Your own job modules: the ``questboard_job_modules`` ini option or
``QUESTBOARD_JOB_MODULES``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from questboard.testing import (
    ManagedProcess,
    RedisServer,
    questboard_env,
    wait_for,
    wait_worker_ready,
    worker_process,
)

FINISHED = {"succeeded", "failed", "canceled"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("questboard_job_modules", "Comma-separated modules with your job types (JOB or JOBS).")


class QuestboardKit:
    """Submit jobs, look at what is enqueued, and run it for real."""

    def __init__(self, tmp_path: Path, redis_server: RedisServer, job_modules: str | None) -> None:
        from shared.accounts import Accounts
        from shared.db import upgrade
        from shared.settings import Settings

        self.tmp_path = tmp_path
        self.redis = redis_server
        self.job_modules = job_modules
        database_url = f"sqlite:///{tmp_path / 'questboard.sqlite3'}"
        upgrade(database_url)
        self.settings = Settings(
            redis_url=redis_server.url,
            database_url=database_url,
            instance_dir=tmp_path / "instance",
            secret_key="test",
            job_modules=job_modules,
            user_job_limit=10_000,
            user_queued_limit=10_000,
        )
        extra = {"QUESTBOARD_JOB_MODULES": job_modules} if job_modules else {}
        self.env = questboard_env(redis_server.url, database_url, tmp_path / "instance", **extra)
        self.user = Accounts(database_url).ensure_user("tester@example.com")
        self.workers: list[ManagedProcess] = []
        self._service: Any = None
        self._submitted: list[str] = []

    @property
    def service(self) -> Any:
        if self._service is None:
            from questboard.app import build

            self._service = build(self.settings).jobs
        return self._service

    def submit(self, job_type: str, params: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
        """Submit as the test user, exactly as the API does (validation, limits, broker message)."""
        job = self.service.submit(self.user, job_type, params or {}, **options)[0]
        self._submitted.append(job["id"])
        return job

    def jobs(self, status: str | None = None, job_type: str | None = None) -> list[dict[str, Any]]:
        jobs, _ = self.service.list(self.user, status=status, job_type=job_type, limit=200)
        return list(reversed(jobs))  # oldest first

    def enqueued(self, job_type: str | None = None) -> list[dict[str, Any]]:
        """Jobs waiting to run (queued or scheduled), oldest first."""
        return [j for j in self.jobs(job_type=job_type) if j["status"] in ("queued", "scheduled")]

    def assert_enqueued(
        self, job_type: str, params: dict[str, Any] | None = None, count: int | None = None
    ) -> list[dict[str, Any]]:
        """At least one (or exactly ``count``) waiting job of ``job_type`` whose params include ``params``."""
        matching = [
            j
            for j in self.enqueued(job_type)
            if params is None or all(j["params"].get(k) == v for k, v in params.items())
        ]
        if count is None and not matching:
            raise AssertionError(
                f"no {job_type} job enqueued with params {params!r}; enqueued: {self.enqueued()}"
            )
        if count is not None and len(matching) != count:
            raise AssertionError(f"expected {count} {job_type} job(s) with {params!r}, found {len(matching)}")
        return matching

    def assert_no_enqueued(self, job_type: str | None = None) -> None:
        waiting = self.enqueued(job_type)
        if waiting:
            raise AssertionError(
                f"expected no enqueued jobs, found {[(j['type'], j['params']) for j in waiting]}"
            )

    def start_worker(self, queues: str = "critical,high,default,low", concurrency: int = 1) -> ManagedProcess:
        proc = worker_process(self.env, self.tmp_path, queues=queues, concurrency=concurrency)
        self.workers.append(proc)
        proc.start()
        wait_worker_ready(proc, self.redis.url)
        return proc

    def perform_enqueued(self, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Run what is waiting on a real worker (started if none runs) and return those jobs, finished.

        Jobs a running worker has already picked up, or even finished, count too: with
        ``questboard_worker`` a job submitted through this kit may be running, waiting for a retry or done
        before this is called, and it is still one the test asked to perform.
        """
        unfinished = [j["id"] for j in self.jobs() if j["status"] not in FINISHED]
        ids = list(dict.fromkeys([*self._submitted, *unfinished]))
        if not any(w.alive() for w in self.workers):
            self.start_worker()

        def finished() -> list[dict[str, Any]] | None:
            jobs = [self.service.get(self.user, job_id) for job_id in ids]
            return jobs if all(j["status"] in FINISHED for j in jobs) else None

        what = f"{len(ids)} enqueued job(s) to finish"
        done = wait_for(finished, timeout_s, 0.05, what=what) if ids else []
        self._submitted.clear()  # after the wait: a timed-out call can be repeated
        return done

    def submit_workflow(self, steps: list[dict[str, Any]], name: str | None = None) -> dict[str, Any]:
        """Submit a workflow as the test user, exactly as ``POST /api/workflows`` does."""
        from shared.workflows import WorkflowSpec
        from shared.workflows.service import Workflows

        spec = WorkflowSpec.model_validate({"name": name, "steps": steps})
        return Workflows(self.settings.resolved_database_url, self.service).create(self.user, spec)

    def perform_workflow(self, workflow_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """Run the workflow on a real worker (started if none runs) and return it once it is final."""
        from shared.workflows.service import Workflows

        if not any(w.alive() for w in self.workers):
            self.start_worker()
        workflows = Workflows(self.settings.resolved_database_url, self.service)

        def finished() -> dict[str, Any] | None:
            workflow = workflows.get(self.user, workflow_id)
            return workflow if workflow["status"] in FINISHED else None

        return wait_for(finished, timeout_s, 0.05, what=f"workflow {workflow_id} to finish")

    def close(self) -> None:
        for proc in self.workers:
            proc.kill()  # the test is over: no graceful stop (ManagedProcess.kill)


@pytest.fixture(scope="session")
def questboard_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("questboard-redis"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
def questboard(
    tmp_path: Path, questboard_redis: RedisServer, pytestconfig: pytest.Config
) -> Iterator[QuestboardKit]:
    questboard_redis.client().flushall()
    modules = (
        pytestconfig.getini("questboard_job_modules") or os.environ.get("QUESTBOARD_JOB_MODULES") or None
    )
    kit = QuestboardKit(tmp_path, questboard_redis, modules)
    yield kit
    kit.close()


@pytest.fixture
def questboard_worker(questboard: QuestboardKit) -> ManagedProcess:
    return questboard.start_worker()
