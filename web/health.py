"""Liveness and readiness (no auth): /healthz says the process lives, /readyz checks dependencies."""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from flask import Blueprint, jsonify
from sqlalchemy import text

from shared import defaults, redisurl
from shared.db import get_engine
from shared.rolestate import read_roles
from web.services import services

bp = Blueprint("health", __name__)

CHECK_TIMEOUT_S = 2.0


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


def _select_one(url: str, outcome: list[str | None]) -> None:
    try:
        with get_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
        outcome.append(None)
    except Exception as exc:  # reported to the caller as the failing check
        outcome.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


def _check_database() -> str | None:
    """The database answers a SELECT within CHECK_TIMEOUT_S (a dead link must not hang /readyz)."""
    outcome: list[str | None] = []
    url = services().settings.resolved_database_url
    check = threading.Thread(target=_select_one, args=(url, outcome), name="readyz-db", daemon=True)
    check.start()
    check.join(CHECK_TIMEOUT_S)
    if not outcome:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    return outcome[0]


def _check_redis_and_workers() -> tuple[str | None, str | None]:
    client = redisurl.client(
        services().settings.redis_url, socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S
    )
    try:
        client.ping()
        last_seen = client.get(defaults.WORKER_LAST_SEEN_KEY)
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}", "unknown (Redis is down)"
    finally:
        client.close()
    if last_seen is None or time.time() - float(last_seen) > defaults.WORKER_SEEN_WINDOW_S:
        return None, f"no worker seen in the last {int(defaults.WORKER_SEEN_WINDOW_S)} s"
    return None, None


def supervised_roles() -> list[dict[str, Any]]:
    """The roles every live ``questboard up`` supervises (their state, pid, restarts, last exit), or []."""
    client = redisurl.client(
        services().settings.redis_url, socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S
    )
    try:
        return read_roles(client)
    except redis.RedisError:
        return []
    finally:
        client.close()


@bp.get("/readyz")
def readyz() -> Any:
    redis_error, worker_error = _check_redis_and_workers()
    problems = {"database": _check_database(), "redis": redis_error, "workers": worker_error}
    checks = {name: (problem or "ok") for name, problem in problems.items()}
    failed = [name for name, problem in problems.items() if problem]
    # Detail only: a role that `up` gave up on fails readiness through the checks above (no worker seen),
    # never by itself.
    roles = [] if redis_error else supervised_roles()
    if failed:
        return jsonify({"status": "unavailable", "failed": failed, "checks": checks, "roles": roles}), 503
    return jsonify({"status": "ok", "checks": checks, "roles": roles})
