"""Each reliability test gets its own redis-server and workers, stopped by PID when it ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from questboard.testing import (
    ManagedProcess,
    RedisServer,
    questboard_env,
    wait_for,
    wait_worker_ready,
    worker_process,
)
from shared.accounts import Accounts
from shared.db import get_sessionmaker
from shared.jobs import JobService
from shared.models import Job, JobAttempt, User
from shared.publisher import SocketIOPublisher
from shared.settings import Settings
from tests.reliability.jobtypes import STARTS_KEY

JOB_MODULES = "tests.reliability.jobtypes"


class Stack:
    """A private Redis, a database, a job service and the workers a test starts."""

    def __init__(self, tmp_path: Path, db_url: str, visibility_timeout_s: int = 300) -> None:
        self.tmp_path = tmp_path
        self.redis = RedisServer(tmp_path / "redis", appendonly=False).start()
        self.db_url = db_url
        self.settings = Settings(
            redis_url=self.redis.url,
            database_url=db_url,
            instance_dir=tmp_path / "instance",
            secret_key="x",
            user_job_limit=100_000,
            job_modules=JOB_MODULES,
            visibility_timeout_s=visibility_timeout_s,
        )
        self.env = questboard_env(
            self.redis.url,
            db_url,
            tmp_path / "instance",
            QUESTBOARD_JOB_MODULES=JOB_MODULES,
            QUESTBOARD_VISIBILITY_TIMEOUT_S=str(visibility_timeout_s),
        )
        self.workers: list[ManagedProcess] = []
        self.user: User = Accounts(db_url).ensure_user("reliable@example.com")
        self.service = self._service()
        self.sessions = get_sessionmaker(db_url)

    def _service(self) -> JobService:
        from questboard.app import job_types
        from workers.celery_app import make_celery
        from workers.dispatch import CeleryDispatcher, pools_of

        registry = job_types(JOB_MODULES)
        return JobService(
            self.db_url,
            registry,
            SocketIOPublisher(self.redis.url),
            CeleryDispatcher(make_celery(self.settings), pools_of(registry)),
            user_job_limit=self.settings.user_job_limit,
        )

    def start_worker(
        self,
        queues: str = "critical,high,default,low",
        concurrency: int = 2,
        name: str | None = None,
        wait: bool = True,
        extra_args: list[str] | None = None,
        pool: str = "threads",
    ) -> ManagedProcess:
        proc = worker_process(
            self.env,
            self.tmp_path,
            queues=queues,
            concurrency=concurrency,
            name=name,
            extra_args=extra_args,
            pool=pool,
        )
        self.workers.append(proc)
        proc.start()
        if wait:
            wait_worker_ready(proc, self.redis.url)
        return proc

    def submit(self, job_type: str, params: dict[str, Any] | None = None, **kw: Any) -> str:
        return self.service.submit(self.user, job_type, params or {}, **kw)[0]["id"]

    def job(self, job_id: str) -> Job:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            session.expunge(job)
            return job

    def jobs(self, ids: list[str]) -> list[Job]:
        with self.sessions() as session:
            jobs = list(session.scalars(select(Job).where(Job.id.in_(ids))))
            for job in jobs:
                session.expunge(job)
            return jobs

    def attempts(self, job_id: str) -> list[JobAttempt]:
        with self.sessions() as session:
            rows = list(session.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id)))
            for row in rows:
                session.expunge(row)
            return rows

    def wait_status(self, job_id: str, status: str, timeout_s: float = 30) -> Job:
        return wait_for(
            lambda: (j := self.job(job_id)).status == status and j,
            timeout_s,
            what=f"job {job_id} to be {status}",
        )

    def starts(self) -> list[str]:
        """Every body start recorded by the test job types, oldest first."""
        return list(self.redis.client().lrange(STARTS_KEY, 0, -1))

    def started_jobs(self) -> list[str]:
        return [entry.split(":")[0] for entry in self.starts()]

    def close(self) -> None:
        for proc in self.workers:
            proc.kill()  # the test is over: no graceful stop (ManagedProcess.kill)
        self.redis.stop()


@pytest.fixture
def make_stack(tmp_path: Path, sqlite_url: str) -> Iterator[Any]:
    made: list[Stack] = []

    def make(**kw: Any) -> Stack:
        stack = Stack(tmp_path / f"s{len(made)}", sqlite_url, **kw)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.close()


@pytest.fixture
def stack(make_stack: Any) -> Stack:
    return make_stack()
