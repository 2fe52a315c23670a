"""Daemon mode: ``worker --detach --pid-file``, ``status`` and ``stop``, as an operator runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from questboard.testing import wait_for

QUESTBOARD = str(Path(sys.executable).parent / "questboard")


def qb(args: list[str], env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([QUESTBOARD, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def pid_file(tmp_path, env):
    path = tmp_path / "worker.pid"
    yield path
    qb(["stop", "--pid-file", str(path), "--timeout", "5"], env)  # whatever the test left running


def _job(client, person, job_id):
    return client.get(f"/api/jobs/{job_id}", headers=person.headers).get_json()


def test_detached_worker_runs_jobs_and_stop_requeues_the_running_one(
    client, alice, env, pid_file, start_worker
):
    started = qb(
        ["worker", "--queues", "default", "--detach", "--pid-file", str(pid_file), "--name", "bg"], env
    )
    assert started.returncode == 0, started.stderr
    assert "running in the background" in started.stdout
    pid = int(pid_file.read_text())
    assert qb(["status", "--pid-file", str(pid_file)], env).returncode == 0

    again = qb(["worker", "--queues", "default", "--detach", "--pid-file", str(pid_file)], env)
    assert again.returncode != 0 and f"already running with pid {pid}" in again.stderr

    quick = client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers).get_json()[
        "id"
    ]
    wait_for(lambda: _job(client, alice, quick)["status"] == "succeeded", 30, what="the detached worker")

    slow = client.post(
        "/api/jobs",
        json={"type": "diagnostics.probe", "params": {"steps": 30, "step_ms": 200}},
        headers=alice.headers,
    ).get_json()["id"]
    wait_for(lambda: _job(client, alice, slow)["status"] == "running", 30, what="the slow job to start")
    stopped = qb(["stop", "--pid-file", str(pid_file), "--timeout", "1"], env)
    assert stopped.returncode == 0 and "1 running job(s) requeued" in stopped.stdout
    assert not pid_file.exists()
    status = qb(["status", "--pid-file", str(pid_file)], env)
    assert status.returncode == 3 and "not running" in status.stdout

    requeued = _job(client, alice, slow)
    assert requeued["status"] == "queued" and requeued["attempts"] == 0
    start_worker(queues="default")  # another worker finishes it: nothing lost
    done = wait_for(lambda: (j := _job(client, alice, slow))["status"] == "succeeded" and j, 60)
    assert done["attempts"] == 1


def test_stale_pid_file_is_reported_and_replaced(env, pid_file):
    pid_file.write_text("999999\n")
    status = qb(["status", "--pid-file", str(pid_file)], env)
    assert status.returncode == 3 and "stale pid file" in status.stdout
    started = qb(["worker", "--queues", "low", "--detach", "--pid-file", str(pid_file)], env)
    assert started.returncode == 0, started.stderr
    assert "replaced a stale pid file" in started.stdout
    assert int(pid_file.read_text()) != 999999
    stopped = qb(["stop", "--pid-file", str(pid_file)], env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout


def test_detach_needs_a_pid_file(env):
    result = qb(["worker", "--queues", "low", "--detach"], env)
    assert result.returncode != 0 and "--pid-file" in result.stderr
