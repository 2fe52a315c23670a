"""Loaded into benchmark workers with ``celery worker --include benchmarks.worker_probe``.

The same module goes into the Questboard worker and the plain Celery worker, so both are timed the same
way and nothing per task touches the network: each pool process keeps, in memory, how many tasks it ran,
when its first one started (``task_prerun``) and when its last one ended (``task_postrun``), and writes
that to ``$BENCH_TIMING_DIR/<pid>.json`` when it exits (and at most every 2 s while it runs).

With ``BENCH_COUNT_SQL=1`` it also counts, per process, SQL statements by verb and commits (SQLAlchemy
engine events on every engine), for the profile in BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any

from celery.signals import task_postrun, task_prerun, worker_process_shutdown, worker_shutdown

_DIR = os.environ.get("BENCH_TIMING_DIR")
_state: dict[str, Any] = {"count": 0, "first": None, "last": None, "flushed": 0.0}
_sql: Counter[str] = Counter()


def _flush() -> None:
    if not _DIR:
        return
    data = {"pid": os.getpid(), **{k: _state[k] for k in ("count", "first", "last")}, "sql": dict(_sql)}
    tmp = os.path.join(_DIR, f".{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, os.path.join(_DIR, f"{os.getpid()}.json"))
    _state["flushed"] = time.time()


@task_prerun.connect
def _prerun(**_: Any) -> None:
    if _state["first"] is None:
        _state["first"] = time.time()


@task_postrun.connect
def _postrun(**_: Any) -> None:
    now = time.time()
    _state["count"] += 1
    _state["last"] = now
    if now - _state["flushed"] > 2.0:
        _flush()


@worker_process_shutdown.connect
def _shutdown(**_: Any) -> None:
    _flush()


@worker_shutdown.connect
def _main_shutdown(**_: Any) -> None:
    # Thread pools run tasks in the main process, which has no worker_process_shutdown.
    if _state["count"]:
        _flush()


if os.environ.get("BENCH_COUNT_SQL") == "1":
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "before_cursor_execute")
    def _count_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        _sql["statement:" + statement.lstrip().split(None, 1)[0].upper()] += 1

    @event.listens_for(Engine, "commit")
    def _count_commit(conn: Any) -> None:
        _sql["commit"] += 1

    @event.listens_for(Engine, "rollback")
    def _count_rollback(conn: Any) -> None:
        _sql["rollback"] += 1
