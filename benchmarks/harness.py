# ruff: noqa: E501
"""What every benchmark shares: private services, worker and web processes, pre-filling, timing, results.

Every process a benchmark starts is a ``questboard.testing.ManagedProcess`` in its own process group and is
stopped by that group's id (SIGTERM to the leader, SIGKILL to the group after a timeout) when the
benchmark ends, fails, times out (``deadline_s``) or is interrupted. Nothing is ever signalled by name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from questboard.cli import worker_argv  # noqa: E402
from questboard.testing import (  # noqa: E402
    ManagedProcess,
    RedisServer,
    free_port,
    http_ok,
    questboard_env,
    wait_for,
    wait_worker_ready,
    worker_process,
)

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
PG_ADMIN_URL = os.environ.get("QUESTBOARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "bench-secret"
BIG_LIMIT = "1000000000"
# The epoch key the workers' maintenance loop sets on a fresh Redis; see Stack.set_broker_epoch.
BROKER_EPOCH_KEY = "questboard:broker-epoch"
PROBE_PARAMS = {"steps": 1, "step_ms": 0, "fail_first_attempts": 0, "fail_always": False}


class BenchTimeout(Exception):
    """The benchmark's own deadline passed."""


# ----- statistics ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if v is not None and v == v]
    return statistics.median(vals) if vals else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


# ----- the machine ---------------------------------------------------------------------------------


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def machine_info() -> dict[str, Any]:
    mem_kb = 0
    with suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    try:
        redis_server = (
            subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=5)
            .stdout.split()[2]
            .removeprefix("v=")
        )
    except (OSError, IndexError, subprocess.SubprocessError):
        redis_server = "-"
    return {
        "nproc": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "celery": _version("celery"),
        "kombu": _version("kombu"),
        "redis_py": _version("redis"),
        "redis_server": redis_server,
        "sqlalchemy": _version("sqlalchemy"),
        "flask_socketio": _version("flask-socketio"),
        "python_socketio": _version("python-socketio"),
        "gunicorn": _version("gunicorn"),
        "sqlite": __import__("sqlite3").sqlite_version,
        "loadavg_at_start": os.getloadavg()[0],
        "git": _git_state(),
    }


def _git_state() -> str:
    """HEAD and how many files differ from it (read-only git commands): the code that was measured."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.splitlines()
        return f"{head} + {len(dirty)} changed/new files" if dirty else head
    except (OSError, subprocess.SubprocessError):
        return "-"


# ----- deadline and signals ------------------------------------------------------------------------


def _raise_timeout(_signum: int, _frame: Any) -> None:
    raise BenchTimeout("the benchmark's deadline passed")


def _raise_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def arm(deadline_s: float) -> None:
    """Stop by ourselves after ``deadline_s`` (SIGALRM), and turn SIGTERM/SIGHUP into a clean exit."""
    signal.signal(signal.SIGALRM, _raise_timeout)
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    signal.alarm(max(1, int(deadline_s)))


def disarm() -> None:
    signal.alarm(0)
    # While cleaning up, a second Ctrl+C or SIGTERM must not cut the cleanup short.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


# ----- processes and services ----------------------------------------------------------------------


class Stack:
    """Everything one benchmark started; ``close()`` stops all of it (processes by process group)."""

    def __init__(self, name: str, keep: bool = False) -> None:
        self.name = name
        self.keep = keep
        self.dir = Path(tempfile.mkdtemp(prefix=f"qb-bench-{name}-"))
        self.logs = self.dir / "logs"
        self.logs.mkdir()
        self.instance = self.dir / "instance"
        self.instance.mkdir()
        self.procs: list[ManagedProcess] = []
        self.redis_servers: list[RedisServer] = []
        self.pg_databases: list[str] = []
        self._template: Path | None = None
        self.failed = False

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.failed = exc_type is not None
        self.close()

    # services

    def start_redis(self) -> RedisServer:
        """A private redis-server (no AOF, no snapshots), stopped by ``close``."""
        server = RedisServer(self.dir / f"redis{len(self.redis_servers)}", appendonly=False)
        self.redis_servers.append(server)
        server.start()
        return server

    def sqlite_url(self, tag: str) -> str:
        """A fresh, migrated SQLite database (a copy of one migrated template)."""
        from shared.db import upgrade

        if self._template is None:
            self._template = self.dir / "template.sqlite3"
            upgrade(f"sqlite:///{self._template}")
        path = self.dir / f"{tag}.sqlite3"
        shutil.copy(self._template, path)
        return f"sqlite:///{path}"

    def postgres_url(self, tag: str) -> str:
        """A fresh, migrated PostgreSQL database, dropped by ``close``."""
        import psycopg

        from shared.db import upgrade

        name = f"qb_bench_{tag}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.pg_databases.append(name)
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        url = f"{base}/{name}"
        upgrade(url)
        # e.g. BENCH_PG_OPTIONS="-c synchronous_commit=off": libpq options carried in DATABASE_URL, so
        # every Questboard process gets them (a configuration-only experiment, no code change).
        if os.environ.get("BENCH_PG_OPTIONS"):
            from urllib.parse import quote

            url += "?options=" + quote(os.environ["BENCH_PG_OPTIONS"])
        return url

    def database_url(self, kind: str, tag: str) -> str:
        return self.postgres_url(tag) if kind == "postgres" else self.sqlite_url(tag)

    def env(self, redis_url: str, db_url: str, **extra: str) -> dict[str, str]:
        return questboard_env(
            redis_url,
            db_url,
            self.instance,
            SECRET_KEY=SECRET,
            QUESTBOARD_USER_JOB_LIMIT=BIG_LIMIT,
            QUESTBOARD_USER_QUEUED_LIMIT=BIG_LIMIT,
            **{"QUESTBOARD_OFFLINE_PACE_MS": "0", **extra},  # benchmarks measure the platform, not a pace
        )

    # processes

    def _track(self, proc: ManagedProcess) -> ManagedProcess:
        self.procs.append(proc)
        return proc

    def timing_dir(self, tag: str) -> Path:
        path = self.dir / f"timing-{tag}"
        if path.exists():
            shutil.rmtree(path)
        path.mkdir()
        return path

    def questboard_worker(
        self,
        env: dict[str, str],
        queues: str = "default,low",
        concurrency: int = 2,
        name: str | None = None,
        timing: Path | None = None,
        extra_args: Sequence[str] = (),
        include: Sequence[str] = ("benchmarks.worker_probe",),
        extra_env: dict[str, str] | None = None,
        wait: bool = True,
        pool: str = "threads",
    ) -> ManagedProcess:
        """A Questboard worker as ``questboard worker``/``up`` starts it (same flags), plus the probe;
        ``pool`` as ``questboard worker --pool`` (threads, the shipped default, or prefork)."""
        env = {**env, **(extra_env or {})}
        if timing is not None:
            env["BENCH_TIMING_DIR"] = str(timing)
        args = list(extra_args)
        if include:
            args += ["--include", ",".join(include)]
        proc = self._track(worker_process(env, self.logs, queues, concurrency, name, args, pool=pool))
        proc.start()
        if wait:
            wait_worker_ready(proc, env["REDIS_URL"], timeout_s=60)
        return proc

    def plain_worker(
        self,
        redis_url: str,
        queues: str = "bench",
        concurrency: int = 2,
        acks_late: bool = True,
        prefetch: int = 1,
        events: bool = False,
        name: str | None = None,
        timing: Path | None = None,
        extra_args: Sequence[str] = (),
        wait: bool = True,
    ) -> ManagedProcess:
        """A plain Celery worker (``benchmarks.plain_app``) with the same command-line flags."""
        name = name or f"plain{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QUESTBOARD_", "CELERY_", "BENCH_"))}
        env.update(
            PYTHONPATH=str(REPO_ROOT),
            PYTHONUNBUFFERED="1",
            BENCH_BROKER_URL=redis_url,
            BENCH_ACKS_LATE="1" if acks_late else "0",
            BENCH_PREFETCH=str(prefetch),
            BENCH_EVENTS="1" if events else "0",
        )
        if timing is not None:
            env["BENCH_TIMING_DIR"] = str(timing)
        argv = [
            *worker_argv(queues, concurrency, name, app="benchmarks.plain_app:app"),
            "--include",
            "benchmarks.worker_probe",
            *extra_args,
        ]
        proc = self._track(ManagedProcess(f"worker-{name}", argv, env, self.logs))
        proc.start()
        if wait:
            wait_plain_ready(proc)
        return proc

    def web(
        self, env: dict[str, str], app: str = "web.wsgi:app", server: str | None = None
    ) -> tuple[ManagedProcess, str]:
        """The web server exactly as ``questboard web`` runs it (shared.webserver: gevent, WEB_CONCURRENCY from
        ``env`` or one process per core, access log on), serving ``app``; returns (process, base URL) once
        /healthz answers. ``server="gthread"`` (or BENCH_WEB_SERVER=gthread) runs the server shipped before
        issue 19 instead: one gthread process with 100 threads (P9's baseline, P2's "before")."""
        from shared.processes import python_module
        from shared.webserver import WSGI_APP, gunicorn_args, web_concurrency

        port = free_port()
        bind = f"127.0.0.1:{port}"
        if (server or os.environ.get("BENCH_WEB_SERVER", "shipped")) == "gthread":
            argv = python_module("gunicorn", *GTHREAD_ARGS, "--bind", bind, app)
        else:
            argv = python_module("gunicorn", *gunicorn_args(bind, web_concurrency(env)))
            argv[argv.index(WSGI_APP)] = app
        base = f"http://127.0.0.1:{port}"
        proc = self._track(
            ManagedProcess(f"web-{port}", argv, {**env, "QUESTBOARD_BASE_URL": base}, self.logs)
        )
        proc.start()

        def up() -> bool:
            if not proc.alive():
                raise RuntimeError(f"web exited:\n{proc.output()[-3000:]}")
            return http_ok(base + "/healthz")

        wait_for(up, 60, 0.1, what=f"{proc.name} answering")
        return proc, base

    def python(self, name: str, args: Sequence[str], env: dict[str, str] | None = None) -> ManagedProcess:
        """A helper Python process of ours (load clients, publishers), tracked like the others."""
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = self._track(ManagedProcess(name, [sys.executable, *args], env, self.logs))
        proc.start()
        return proc

    def stop(self, proc: ManagedProcess, timeout_s: float = 15.0) -> None:
        proc.stop(timeout_s=timeout_s)

    def close(self) -> None:
        disarm()
        for proc in reversed(self.procs):
            with suppress(Exception):
                proc.stop(timeout_s=10)
        for server in self.redis_servers:
            with suppress(Exception):
                server.stop()
        if self.pg_databases:
            from shared import db as shared_db

            for url in list(shared_db._engines):
                if any(name in url for name in self.pg_databases):
                    with suppress(Exception):
                        shared_db._engines.pop(url).dispose()
                    shared_db._sessionmakers.pop(url, None)
            with suppress(Exception):
                import psycopg

                with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
                    for name in self.pg_databases:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if self.failed or self.keep:
            print(f"[{self.name}] logs kept in {self.logs}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# The web server before issue 19: one process, 100 threads, Socket.IO in threading mode.
GTHREAD_ARGS = [
    "--worker-class",
    "gthread",
    "--workers",
    "1",
    "--threads",
    "100",
    "--graceful-timeout",
    "10",
    "--access-logfile",
    "-",
    "--no-control-socket",
]


def wait_plain_ready(proc: ManagedProcess, timeout_s: float = 60.0) -> None:
    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.output()[-3000:]}")
        return " ready." in proc.output()

    wait_for(ready, timeout_s, 0.1, what=f"{proc.name} ready")


def set_broker_epoch(redis_url: str) -> None:
    """Mark the Redis as one the workers already know (an hour old), as it is in a running system.

    On a Redis without this key the first worker's maintenance pass re-sends every queued job (it takes
    the missing key to mean Redis lost its data); a benchmark that pre-fills the queue on a fresh Redis
    would otherwise get every message twice.
    """
    client = redis.Redis.from_url(redis_url)
    client.set(BROKER_EPOCH_KEY, f"{uuid.uuid4().hex}:{time.time() - 3600}")
    client.close()


# ----- users, jobs and messages --------------------------------------------------------------------


def make_users(db_url: str, count: int, prefix: str = "bench") -> list[tuple[int, str]]:
    """``count`` users with one API token each: [(user_id, token)]."""
    from shared.accounts import Accounts

    accounts = Accounts(db_url)
    made = []
    for i in range(count):
        user = accounts.ensure_user(f"{prefix}{i}@example.com")
        made.append((user.id, accounts.issue_api_token(user)))
    return made


def questboard_jobs(redis_url: str, database_url: str) -> Any:
    """Questboard's job service from the composition root, without the per-user limits (one user submits
    every job of a benchmark)."""
    from questboard.app import build
    from shared.settings import Settings

    settings = Settings(
        redis_url=redis_url, database_url=database_url, user_job_limit=10**9, user_queued_limit=10**9
    )
    return build(settings, celery=questboard_celery(redis_url)).jobs


def questboard_celery(redis_url: str) -> Any:
    """Questboard's own Celery app (its celeryconfig) pointed at ``redis_url``: sends what JobService sends."""
    from shared.settings import Settings
    from workers.celery_app import make_celery

    return make_celery(Settings(redis_url=redis_url))


def plain_celery(redis_url: str) -> Any:
    """A client for the plain app: sends tasks by name, JSON, to ``redis_url``."""
    from celery import Celery

    app = Celery("bench_plain_client")
    app.conf.update(
        broker_url=redis_url,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
    )
    return app


def push_messages(
    app: Any, task: str, queue: str, items: Sequence[tuple[str, list[Any]]], batch: int = 1000
) -> float:
    """Send one message per (task_id, args) through ``app.send_task`` with kombu's pipelined publish batch
    (one Redis round trip per ``batch`` messages); the messages are byte-for-byte what ``send_task``
    sends one by one. Returns the seconds it took."""
    started = time.perf_counter()
    with app.producer_or_acquire() as producer, producer.batch(batch):
        for task_id, args in items:
            app.send_task(task, args=args, queue=queue, routing_key=queue, task_id=task_id, producer=producer)
    return time.perf_counter() - started


def insert_jobs(
    db_url: str,
    user_id: int,
    count: int,
    queue: str = "default",
    job_type: str = "diagnostics.probe",
    params: dict[str, Any] | None = None,
    status: str = "queued",
    chunk: int = 5000,
) -> list[str]:
    """Bulk-insert ``count`` job rows (and their first event) as JobService.submit would leave them.

    One multi-row INSERT per ``chunk`` rows through SQLAlchemy Core (executemany), one commit per chunk.
    """
    from sqlalchemy import insert

    from shared.db import get_sessionmaker
    from shared.models import Job, JobEvent, utcnow

    sessions = get_sessionmaker(db_url)
    ids: list[str] = []
    params = dict(PROBE_PARAMS if params is None else params)
    for start in range(0, count, chunk):
        now = utcnow()
        rows = []
        for _ in range(min(chunk, count - start)):
            job_id = uuid.uuid4().hex
            ids.append(job_id)
            rows.append(
                {
                    "id": job_id,
                    "user_id": user_id,
                    "type": job_type,
                    "status": status,
                    "queue": queue,
                    "params": params,
                    "max_attempts": 3,
                    "message": "Queued",
                    "progress": 0,
                    "attempts": 0,
                    "cancel_requested": False,
                    "needs_dispatch": False,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        with sessions() as session:
            session.execute(insert(Job), rows)
            session.execute(
                insert(JobEvent),
                [
                    {
                        "job_id": r["id"],
                        "status": status,
                        "progress": 0,
                        "message": "Queued",
                        "created_at": now,
                    }
                    for r in rows
                ],
            )
            session.commit()
    return ids


def prefill_questboard(
    db_url: str, redis_url: str, user_id: int, count: int, queue: str = "default", **kw: Any
) -> tuple[list[str], float, float]:
    """Rows in bulk, then their messages pipelined. Returns (ids, insert seconds, push seconds)."""
    t0 = time.perf_counter()
    ids = insert_jobs(db_url, user_id, count, queue=queue, **kw)
    t1 = time.perf_counter()
    push_s = push_messages(
        questboard_celery(redis_url), kw.get("job_type", "diagnostics.probe"), queue, [(i, [i]) for i in ids]
    )
    return ids, t1 - t0, push_s


@dataclass
class Drain:
    """A drain set up by ``prepare_drain``: the database, the workers' environment and timing directory."""

    db_url: str
    env: dict[str, str]
    timing: Path
    insert_s: float
    push_s: float

    def succeeded(self) -> int:
        from sqlalchemy import func, select

        from shared.db import get_sessionmaker
        from shared.models import Job

        with get_sessionmaker(self.db_url)() as session:
            return session.scalar(select(func.count()).where(Job.status == "succeeded")) or 0


def prepare_drain(stack: Stack, redis_url: str, db_kind: str, n: int, tag: str) -> Drain:
    """A Questboard drain's start: Redis emptied (its broker epoch set), a new database with one user and
    ``n`` no-op jobs of ``default`` in it and on the broker."""
    redis.Redis.from_url(redis_url).flushall()
    set_broker_epoch(redis_url)
    db_url = stack.database_url(db_kind, tag)
    [(user_id, _token)] = make_users(db_url, 1)
    _ids, insert_s, push_s = prefill_questboard(db_url, redis_url, user_id, n, "default")
    return Drain(db_url, stack.env(redis_url, db_url), stack.timing_dir(tag), insert_s, push_s)


# ----- waiting and timing --------------------------------------------------------------------------


def queue_depth(client: redis.Redis, queues: Iterable[str]) -> int:
    """Messages waiting in ``queues`` plus messages delivered and not yet acknowledged."""
    pipe = client.pipeline(transaction=False)  # no MULTI/EXEC: they would count as the systems' commands
    for q in queues:
        pipe.llen(q)
    pipe.hlen("unacked")
    return int(sum(pipe.execute()))


def wait_drained(
    client: redis.Redis, queues: Iterable[str], timeout_s: float, worker: ManagedProcess | None = None
) -> None:
    queues = list(queues)

    def drained() -> bool:
        if worker is not None and not worker.alive():
            raise RuntimeError(f"{worker.name} died:\n{worker.output()[-3000:]}")
        return queue_depth(client, queues) == 0

    wait_for(drained, timeout_s, 0.02, what=f"queues {queues} drained")


def read_timing(path: Path) -> dict[str, Any]:
    """Sum the pool processes' records: tasks run, first start, last end, SQL counts."""
    count, firsts, lasts = 0, [], []
    sql: dict[str, int] = {}
    for file in path.glob("*.json"):
        data = json.loads(file.read_text())
        count += data["count"]
        if data["first"] is not None:
            firsts.append(data["first"])
        if data["last"] is not None:
            lasts.append(data["last"])
        for k, v in data.get("sql", {}).items():
            sql[k] = sql.get(k, 0) + v
    return {
        "count": count,
        "first": min(firsts) if firsts else None,
        "last": max(lasts) if lasts else None,
        "sql": sql,
    }


def group_cpu(pgid: int) -> dict[str, float]:
    """CPU seconds (user+system) of the live processes in process group ``pgid``: the leader and the rest."""
    tick = os.sysconf("SC_CLK_TCK")
    leader = others = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) != pgid:  # field 5 (pgrp), counted after the command name
            continue
        cpu = (int(fields[11]) + int(fields[12])) / tick
        if int(entry) == pgid:
            leader += cpu
        else:
            others += cpu
    return {"main": leader, "children": others}


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def commandstats(client: redis.Redis) -> dict[str, int]:
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in client.info("commandstats").items()}


# The drain poller's own commands (and INFO), left out of "commands per job".
POLLER_COMMANDS = {"llen", "hlen", "info", "flushall", "ping"}


def diff_stats(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {
        k: after[k] - before.get(k, 0)
        for k in after
        if after[k] - before.get(k, 0) > 0 and k not in POLLER_COMMANDS
    }


class CpuMeter:
    """CPU used by a worker (main process, pool processes) and by redis-server between start and stop."""

    def __init__(self, client: redis.Redis, proc: ManagedProcess) -> None:
        self.client, self.proc = client, proc
        self.before = group_cpu(proc.pid)
        self.redis_before = redis_cpu(client)

    def per_job_ms(self, n: int) -> dict[str, float]:
        after = group_cpu(self.proc.pid)
        red = redis_cpu(self.client) - self.redis_before
        return {
            "worker_main": round(1000 * (after["main"] - self.before["main"]) / n, 3),
            "pool_children": round(1000 * (after["children"] - self.before["children"]) / n, 3),
            "redis_server": round(1000 * red / n, 3),
        }


def to_unix(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


# ----- command line and results --------------------------------------------------------------------


def parser(description: str, deadline_s: int, runs: int = 3) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--runs", type=int, default=runs, help=f"repetitions; medians are reported (default {runs})"
    )
    p.add_argument(
        "--deadline",
        type=int,
        default=deadline_s,
        help=f"stop after this many seconds (default {deadline_s})",
    )
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite", help="Questboard's database")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) afterwards")
    p.add_argument("--out", type=Path, default=None, help="where to write the JSON result")
    return p


def run_benchmark(
    name: str, args: argparse.Namespace, body: Callable[[Stack], dict[str, Any]]
) -> dict[str, Any]:
    """Run ``body`` inside a Stack with the deadline armed; write and print its JSON result."""
    arm(args.deadline)
    started = time.time()
    info = machine_info()
    with Stack(name, keep=args.keep) as stack:
        result = body(stack)
    elapsed = time.time() - started
    result = {
        "benchmark": name,
        "command": "python -m benchmarks." + Path(sys.argv[0]).stem + " " + " ".join(sys.argv[1:]),
        "db": getattr(args, "db", "sqlite"),
        "runs": args.runs,
        "elapsed_s": round(elapsed, 1),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        **result,
    }
    out = args.out or RESULTS_DIR / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(
        json.dumps(
            {k: result[k] for k in ("benchmark", "elapsed_s", "summary") if k in result},
            indent=2,
            default=str,
        )
    )
    print(f"result written to {out}")
    return result


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
