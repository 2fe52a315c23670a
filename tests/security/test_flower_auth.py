"""Flower never runs open.

Already covered elsewhere, not repeated here: ``questboard flower`` with FLOWER_BASIC_AUTH unset exits
non-zero (tests/integration/test_cli.py::test_flower_refuses_to_start_without_auth), and ``/`` answers 401
without or with wrong credentials (tests/integration/test_ops_cli.py::test_flower_runs_behind_basic_auth).
This adds: credentials that look given but are not (empty, no password, an empty password among several),
and every page and API endpoint of a running Flower, not only ``/``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from questboard.testing import ManagedProcess, free_port, http_ok, wait_for

QUESTBOARD = str(Path(sys.executable).parent / "questboard")
USER, PASSWORD = "ops", "flower-Pa55-82d1"
# Flower's pages and its API: the API can revoke and terminate tasks and shut workers down.
GETS = [
    "/",
    "/workers",
    "/tasks",
    "/broker",
    "/api/workers",
    "/api/tasks",
    "/api/task/info/x",
    "/api/queues/length",
    "/metrics",  # Flower serves it open by default: questboard flower puts it behind the auth
]
POSTS = ["/api/task/revoke/x", "/api/task/async-apply/diagnostics.probe", "/api/worker/shutdown/w@h"]


@pytest.mark.parametrize("value", ["", "ops", "ops:", ":secret", "ops:secret,guest:"])
def test_flower_refuses_credentials_that_are_not_a_user_and_a_password(env, value):
    result = subprocess.run(
        [QUESTBOARD, "flower", "--port", str(free_port())],
        env={**env, "FLOWER_BASIC_AUTH": value},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0 and "FLOWER_BASIC_AUTH" in result.stderr, (value, result.stderr)


def test_every_flower_page_and_api_endpoint_wants_the_password(env, tmp_path):
    port = free_port()
    flower = ManagedProcess(
        "flower",
        [QUESTBOARD, "flower", "--port", str(port)],
        {**env, "FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}"},
        tmp_path,
    )
    flower.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_ok(base + "/healthcheck"), 30, what="flower")
        problems = []
        for method, path in [("GET", p) for p in GETS] + [("POST", p) for p in POSTS]:
            for auth in (None, (USER, ""), (USER, "wrong"), ("", PASSWORD)):
                status = requests.request(method, base + path, auth=auth, timeout=5).status_code
                if status != 401:
                    problems.append(f"{method} {path} with {auth}: {status}")
        assert not problems, "\n".join(problems)
        assert requests.get(base + "/api/workers", auth=(USER, PASSWORD), timeout=5).status_code == 200
        scrape = requests.get(base + "/metrics", auth=(USER, PASSWORD), timeout=5)
        assert scrape.status_code == 200 and "flower_" in scrape.text, scrape.text[:200]
        assert requests.get(base + "/healthcheck", timeout=5).text == "OK"  # stays open for health checks
        assert PASSWORD not in flower.output()
    finally:
        flower.stop(timeout_s=10)


REDIS_PASSWORD = "redis-Pa55-1b7e"


@pytest.fixture
def locked_redis(tmp_path):
    """A private redis-server that wants a password (requirepass)."""
    from questboard.testing import RedisServer

    server = RedisServer(tmp_path / "locked-redis", appendonly=False, password=REDIS_PASSWORD).start()
    yield server
    server.stop()


def test_no_password_on_flowers_command_line_or_in_its_worker_view(env, tmp_path, locked_redis):
    from questboard.testing import wait_worker_ready, worker_process

    assert REDIS_PASSWORD in locked_redis.url
    env = {**env, "REDIS_URL": locked_redis.url, "FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}"}
    worker = worker_process(env, tmp_path, queues="low", concurrency=1)
    worker.start()
    port = free_port()
    flower = ManagedProcess("flower", [QUESTBOARD, "flower", "--port", str(port)], env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_worker_ready(worker, locked_redis.url)
        flower.start()
        wait_for(lambda: http_ok(base + "/healthcheck"), 30, what="flower")
        assert requests.get(base + "/api/workers", timeout=5).status_code == 401  # the auth still holds

        def worker_view() -> str:
            answer = requests.get(base + "/api/workers?refresh=1", auth=(USER, PASSWORD), timeout=20)
            assert answer.status_code == 200
            workers = answer.json()
            return answer.text if any("conf" in info and "stats" in info for info in workers.values()) else ""

        view = wait_for(worker_view, 60, 0.5, what="the worker's conf and stats in Flower")
        assert "redbeat_redis_url" in view and "broker_url" in view
        assert REDIS_PASSWORD not in view, [line for line in view.split(",") if REDIS_PASSWORD in line]
        assert REDIS_PASSWORD not in flower.output() and PASSWORD not in flower.output()
        assert REDIS_PASSWORD not in worker.output()
        cmdline = Path(f"/proc/{flower.pid}/cmdline").read_bytes().decode()
        assert "flower" in cmdline and PASSWORD not in cmdline and REDIS_PASSWORD not in cmdline
    finally:
        flower.stop(timeout_s=10)
        worker.stop(timeout_s=15)
