"""The ``questboard`` command as a user runs it (contract §1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from questboard.testing import ManagedProcess, free_port, questboard_env, wait_for
from shared.accounts import Accounts

QUESTBOARD = str(Path(sys.executable).parent / "questboard")


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([QUESTBOARD, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_db_upgrade_is_idempotent(tmp_path, redis_url):
    env = questboard_env(redis_url, f"sqlite:///{tmp_path}/db.sqlite3", tmp_path / "instance")
    assert run(["db", "upgrade"], env).returncode == 0
    second = run(["db", "upgrade"], env)
    assert second.returncode == 0 and "up to date" in second.stdout


def test_users_create_prints_a_working_token_and_login_link(tmp_path, redis_url, client, app):
    url = app.config["QUESTBOARD_SETTINGS"].resolved_database_url
    env = questboard_env(redis_url, url, tmp_path / "instance")
    created = run(["users", "create", "Me@Example.com"], env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert client.get("/api/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # Running it again finds the same user and issues another token.
    again = run(["users", "create", "me@example.com"], env).stdout.strip().splitlines()[-1]
    assert again != token
    assert client.get("/api/jobs", headers={"Authorization": f"Bearer {again}"}).status_code == 200

    link = run(["users", "login-link", "me@example.com"], env).stdout.strip().splitlines()[-1]
    assert link.startswith("http://127.0.0.1:5000/login/")
    path = link.removeprefix("http://127.0.0.1:5000")
    assert client.get(path).status_code == 302  # logged in and sent on
    assert client.get("/").status_code == 200
    fresh = app.test_client()
    assert fresh.get(path).status_code == 400  # single use


def test_users_commands_reject_bad_input(tmp_path, redis_url):
    env = questboard_env(redis_url, f"sqlite:///{tmp_path}/db.sqlite3", tmp_path / "instance")
    bad = run(["users", "create", "not-an-email"], env)
    assert bad.returncode != 0 and "email" in bad.stderr
    missing = run(["users", "login-link", "ghost@example.com"], env)
    assert missing.returncode != 0 and "no user" in missing.stderr
    assert run(["worker", "--queues", "urgent"], env).returncode != 0


def test_flower_refuses_to_start_without_auth(tmp_path, redis_url):
    env = questboard_env(redis_url, f"sqlite:///{tmp_path}/db.sqlite3", tmp_path / "instance")
    env.pop("FLOWER_BASIC_AUTH", None)
    result = run(["flower"], env, timeout=30)
    assert result.returncode != 0 and "FLOWER_BASIC_AUTH" in result.stderr


def test_up_without_redis_fails_fast_with_advice(tmp_path):
    env = questboard_env(
        f"redis://127.0.0.1:{free_port()}/0", f"sqlite:///{tmp_path}/db.sqlite3", tmp_path / "i"
    )
    env["PATH"] = str(Path(sys.executable).parent)  # a PATH with no redis-server on it
    started = time.monotonic()
    result = run(["up", "--no-flower"], env, timeout=30)
    assert time.monotonic() - started < 5
    assert result.returncode != 0
    assert "redis" in result.stderr.lower() and "REDIS_URL" in result.stderr


def test_up_runs_everything_and_stops_it_on_sigint(tmp_path):
    web_port, redis_port, flower_port = free_port(), free_port(), free_port()
    instance = tmp_path / "instance"
    env = questboard_env(f"redis://127.0.0.1:{redis_port}/0", "", instance, FLOWER_BASIC_AUTH="ops:s3cret")
    env.pop("DATABASE_URL")  # the default: SQLite in the instance folder
    proc = ManagedProcess(
        "up", [QUESTBOARD, "up", "--port", str(web_port), "--flower-port", str(flower_port)], env, tmp_path
    )
    proc.start()
    base = f"http://127.0.0.1:{web_port}"
    try:
        wait_for(lambda: requests.get(base + "/readyz", timeout=2).status_code == 200, 60, what="readyz")
        assert (instance / "questboard.sqlite3").exists()
        assert (instance / "redis").is_dir()  # it started a private redis-server
        out = proc.output()
        assert "started a private redis-server" in out
        assert f"http://127.0.0.1:{web_port}" in out and f"http://127.0.0.1:{flower_port}" in out
        flower = f"http://127.0.0.1:{flower_port}/"
        wait_for(lambda: requests.get(flower, timeout=2).status_code == 401, 30, what="flower")
        assert requests.get(flower, auth=("ops", "s3cret"), timeout=5).status_code == 200

        token = Accounts(f"sqlite:///{instance}/questboard.sqlite3").issue_api_token(
            Accounts(f"sqlite:///{instance}/questboard.sqlite3").ensure_user("me@example.com")
        )
        headers = {"Authorization": f"Bearer {token}"}
        job = requests.post(
            base + "/api/jobs", json={"type": "diagnostics.probe"}, headers=headers, timeout=5
        )
        job_id = job.json()["id"]
        wait_for(
            lambda: (
                requests.get(f"{base}/api/jobs/{job_id}", headers=headers, timeout=5).json()["status"]
                == "succeeded"
            ),
            30,
        )

        children = _descendants(proc.pid)
        assert len(children) >= 5
        os.kill(proc.pid, signal.SIGINT)
        assert proc.proc.wait(timeout=90) == 0
        wait_for(lambda: not any(_alive(pid) for pid in children), 30, what="children to exit")
        assert "stopped" in proc.output()
    finally:
        proc.stop(timeout_s=30)


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    parents: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = map(int, line.split())
        parents.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_the_cli_names_its_database_and_says_when_it_is_new(tmp_path, redis_url):
    db = tmp_path / "instance" / "questboard.sqlite3"
    env = questboard_env(redis_url, "", tmp_path / "instance")  # no DATABASE_URL: the instance's SQLite
    first = run(["users", "create", "me@example.com"], env)
    assert first.returncode == 0, first.stderr
    assert f"database sqlite:///{db}" in first.stderr and "NEW" in first.stderr, first.stderr
    again = run(["users", "login-link", "me@example.com"], env)
    assert again.returncode == 0 and f"database sqlite:///{db}" in again.stderr and "NEW" not in again.stderr
    assert again.stdout.strip().splitlines()[-1].startswith("http")  # the link is still the last line


def test_up_says_which_redis_it_uses_with_the_password_masked():
    from questboard.cli import _describe_redis

    shown = _describe_redis("redis://:s3cret@10.0.0.5:6380/2", own=False)
    assert shown == "redis://:***@10.0.0.5:6380/2  (the one at REDIS_URL)"
    assert "private" in _describe_redis("redis://127.0.0.1:6379/0", own=True)
