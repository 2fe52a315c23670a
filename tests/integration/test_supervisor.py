"""`questboard up` supervises its roles (issue 17): ports checked up front, a role that exits or is killed
is started again, a crash-looping one is given up on while the rest serve, SIGTERM stops everything warm.

Real processes: `questboard up` with its private redis-server, SQLite in the instance folder, free ports.
Every process an installation started is found by its instance folder (in its environment) and killed at
teardown, even when a test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from sqlalchemy import create_engine, text

from questboard.testing import ManagedProcess, free_port, questboard_env, wait_for
from shared.accounts import Accounts

QUESTBOARD = str(Path(sys.executable).parent / "questboard")
FLOWER_AUTH = ("ops", "s3cret")
ROLES = ["redis", "web", "worker critical,high", "worker default,low", "beat", "flower"]
BEAT_LOCK = "redbeat::lock"
COME_BACK_S = 30.0
SERVE_AGAIN_S = 60.0


class Installation:
    """One `questboard up` on free ports, and what a user checks on it (readyz, jobs, Flower)."""

    def __init__(self, base: Path, *extra_args: str) -> None:
        self.web_port, self.flower_port, self.redis_port = free_port(), free_port(), free_port()
        self.instance = base / "instance"
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.flower_url = f"http://127.0.0.1:{self.flower_port}"
        env = questboard_env(
            f"redis://127.0.0.1:{self.redis_port}/0",
            "",
            self.instance,
            FLOWER_BASIC_AUTH=":".join(FLOWER_AUTH),
            JOB_CONCURRENCY="1",
            QUESTBOARD_BASE_URL=self.base_url,
        )
        env.pop("DATABASE_URL")  # the default: SQLite in the instance folder
        self.env = env
        argv = [QUESTBOARD, "up", "--port", str(self.web_port), "--flower-port", str(self.flower_port)]
        self.up = ManagedProcess("up", [*argv, *extra_args], env, base)
        self._headers: dict[str, str] | None = None

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.instance}/questboard.sqlite3"

    def start(self, roles: list[str]) -> Installation:
        self.up.start()
        wait_for(self.ready, 90, 0.2, what="readyz 200 after `up` started")
        wait_for(lambda: self.running(roles), 30, 0.2, what=f"roles {roles} running")
        return self

    def readyz(self) -> tuple[int, dict[str, Any]]:
        response = requests.get(self.base_url + "/readyz", timeout=5)
        return response.status_code, response.json()

    def ready(self) -> bool:
        if not self.up.alive():
            raise RuntimeError(f"`questboard up` exited:\n{self.up.output()[-4000:]}")
        return self.readyz()[0] == 200

    def roles(self) -> dict[str, dict[str, Any]]:
        return {role["name"]: role for role in self.readyz()[1]["roles"]}

    def running(self, names: list[str]) -> dict[str, dict[str, Any]] | None:
        roles = self.roles()
        return roles if all(roles.get(n, {}).get("state") == "running" for n in names) else None

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            accounts = Accounts(self.database_url)
            user = accounts.ensure_user("ops@example.com", admin=True)
            self._headers = {"Authorization": f"Bearer {accounts.issue_api_token(user)}"}
        return self._headers

    def submit(self, queue: str, **params: Any) -> str:
        body = {"type": "diagnostics.probe", "queue": queue, "params": params}
        response = requests.post(self.base_url + "/api/jobs", json=body, headers=self.headers, timeout=10)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def status(self, job_id: str) -> str:
        response = requests.get(f"{self.base_url}/api/jobs/{job_id}", headers=self.headers, timeout=10)
        return str(response.json()["status"])

    def run_job(self, queue: str) -> None:
        job_id = self.submit(queue)
        wait_for(lambda: self.status(job_id) == "succeeded", SERVE_AGAIN_S, 0.2, what=f"job on {queue}")

    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port, decode_responses=True, socket_timeout=2)

    def flower_ok(self) -> bool:
        return requests.get(self.flower_url + "/api/workers", auth=FLOWER_AUTH, timeout=5).status_code == 200

    def ours(self) -> list[int]:
        """Every live process started for this installation (its instance folder is in their environment)."""
        marker = f"QUESTBOARD_INSTANCE_DIR={self.instance}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if marker in (entry / "environ").read_bytes().split(b"\0") and _alive(int(entry.name)):
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def close(self) -> None:
        try:
            self.up.stop(timeout_s=90)
        finally:
            for pid in self.ours():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _listen(port: int) -> socket.socket:
    """A foreign listener on ``port`` (another Flower, another web server…)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    inst = Installation(tmp_path_factory.mktemp("up"))
    try:
        yield inst.start(ROLES)
    finally:
        inst.close()


# ----- ports are checked before anything starts -----------------------------------------------------


@pytest.mark.parametrize(
    ("taken", "flag"), [("web", "--port"), ("flower", "--flower-port"), ("redis", "REDIS_URL")]
)
def test_up_names_a_port_in_use_before_starting_anything(tmp_path, taken, flag):
    inst = Installation(tmp_path)
    port = {"web": inst.web_port, "flower": inst.flower_port, "redis": inst.redis_port}[taken]
    with _listen(port):
        started = time.monotonic()
        argv = [QUESTBOARD, "up", "--port", str(inst.web_port), "--flower-port", str(inst.flower_port)]
        try:
            result = subprocess.run(argv, env=inst.env, capture_output=True, text=True, timeout=60)
        finally:
            inst.close()
        elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert elapsed < 5, f"took {elapsed:.1f} s:\n{result.stderr[-2000:]}"
    assert f"port {port}" in result.stderr and "in use" in result.stderr and flag in result.stderr
    assert not (inst.instance / "redis").exists()  # no private Redis (nor anything else) was started


def test_flower_port_comes_from_the_environment_too(tmp_path):
    inst = Installation(tmp_path)
    argv = [QUESTBOARD, "up", "--port", str(inst.web_port)]
    with _listen(inst.flower_port):
        env = {**inst.env, "QUESTBOARD_FLOWER_PORT": str(inst.flower_port)}
        try:
            result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        finally:
            inst.close()
    assert result.returncode != 0 and f"port {inst.flower_port} (Flower)" in result.stderr


def test_up_refuses_the_same_port_for_web_and_flower(tmp_path):
    inst = Installation(tmp_path)
    argv = [QUESTBOARD, "up", "--port", str(inst.web_port), "--flower-port", str(inst.web_port)]
    try:
        result = subprocess.run(argv, env=inst.env, capture_output=True, text=True, timeout=60)
    finally:
        inst.close()
    assert result.returncode != 0
    assert f"port {inst.web_port} is wanted by both web and Flower" in result.stderr


# ----- a role that dies is started again ---------------------------------------------------------------

SERVES = {"worker critical,high": "high"}  # the queue whose job proves a killed role serves again


@pytest.mark.parametrize("name", ROLES)
def test_a_killed_role_comes_back_and_the_installation_serves(installation, name):
    inst = installation
    old = inst.roles()[name]
    assert old["state"] == "running" and _parent(old["pid"]) == inst.up.pid
    if name == "beat":  # the leader lock RedBeat keeps in Redis while beat runs
        old_lock = wait_for(lambda: inst.redis().get(BEAT_LOCK), 30, 0.2, what="beat holding its lock")

    killed = time.monotonic()
    os.kill(old["pid"], signal.SIGKILL)  # the leader only: what it leaves behind is the supervisor's to reap
    new = wait_for(
        lambda: (r := inst.roles().get(name)) and r["state"] == "running" and r["pid"] != old["pid"] and r,
        COME_BACK_S,
        0.1,
        what=f"{name} started again",
    )
    back_s = time.monotonic() - killed
    assert _alive(new["pid"]) and _parent(new["pid"]) == inst.up.pid
    assert new["restarts"] == old["restarts"] + 1 and new["last_exit"] == "killed by SIGKILL"

    if name == "beat":  # released for the new beat, which takes it at once (not after 90 s)
        lock = wait_for(lambda: (v := inst.redis().get(BEAT_LOCK)) != old_lock and v, 15, 0.2, what="lock")
        assert (
            lock and f"released the leader lock of the beat that died (pid {old['pid']})" in inst.up.output()
        )
    wait_for(inst.ready, SERVE_AGAIN_S, 0.2, what="readyz 200 again")
    if name == "flower":
        wait_for(inst.flower_ok, SERVE_AGAIN_S, 0.2, what="Flower answering again")
    inst.run_job(SERVES.get(name, "default"))
    serving_s = time.monotonic() - killed
    assert inst.up.alive() and not _alive(old["pid"])
    print(
        f"\n[supervisor] {name}: new pid after {back_s:.1f} s, readyz 200 + job done after {serving_s:.1f} s"
    )


def test_a_worker_shut_down_from_flower_is_started_again(installation):
    inst = installation
    name = "worker default,low"
    old, web_pid = inst.roles()[name], inst.roles()["web"]["pid"]
    wait_for(inst.flower_ok, 30, 0.2, what="Flower")

    def flower_worker() -> str | None:
        workers = requests.get(
            inst.flower_url + "/api/workers?refresh=1", auth=FLOWER_AUTH, timeout=10
        ).json()
        return next((w for w in workers if w.startswith("default-low@")), None)

    worker = wait_for(flower_worker, 30, 0.5, what="Flower to see the default-low worker")
    shutdown = requests.post(f"{inst.flower_url}/api/worker/shutdown/{worker}", auth=FLOWER_AUTH, timeout=10)
    assert shutdown.status_code == 200, shutdown.text

    new = wait_for(
        lambda: (r := inst.roles()[name])["state"] == "running" and r["pid"] != old["pid"] and r,
        COME_BACK_S,
        0.2,
        what="the pool started again",
    )
    assert new["last_exit_code"] == 0 and new["restarts"] == old["restarts"] + 1
    inst.run_job("default")  # the same pool serves again
    assert inst.up.alive() and inst.roles()["web"]["pid"] == web_pid  # nothing else went down


# ----- a crash loop is given up on, loudly, and the rest keep serving -----------------------------------


def _take_port_from_flower(inst: Installation) -> socket.socket:
    """Kill Flower and bind its port before the supervisor starts it again (as another Flower would)."""
    for _attempt in range(3):
        pid = wait_for(lambda: inst.roles()["flower"]["pid"], 30, 0.1, what="Flower running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                return _listen(inst.flower_port)
            except OSError:
                time.sleep(0.005)
    raise AssertionError("could not take Flower's port")


def test_a_crash_looping_role_is_given_up_while_the_rest_serve(installation):
    inst = installation
    web_pid = inst.roles()["web"]["pid"]
    with _take_port_from_flower(inst):
        flower = wait_for(
            lambda: (r := inst.roles()["flower"])["state"] == "gave-up" and r, 60, 0.2, what="gave up"
        )
        out = inst.up.output()
        assert "GAVE UP on flower" in out and f"port {inst.flower_port} (Flower) is already in use" in out
        assert flower["pid"] is None and "in use" in flower["last_exit"]

        status, body = inst.readyz()  # not a check the contract names: still ready
        assert status == 200 and body["status"] == "ok", body
        inst.run_job("default")
        inst.run_job("high")
        assert inst.roles()["web"]["pid"] == web_pid and inst.up.alive()

        # The console shows the role's state to operators.
        accounts = Accounts(inst.database_url)
        link = accounts.create_magic_link(accounts.ensure_user("ops@example.com", admin=True), inst.base_url)
        session = requests.Session()
        assert session.get(link, timeout=10).status_code == 200
        page = session.get(inst.base_url + "/admin", timeout=10).text
        assert 'data-role-name="flower" data-state="gave-up"' in page
        assert 'data-role-name="web" data-state="running"' in page


# ----- SIGTERM stops everything warm ---------------------------------------------------------------------


def test_sigterm_stops_every_child_warm_and_exits_0(tmp_path):
    inst = Installation(tmp_path, "--no-flower")
    try:
        inst.start(["redis", "web", "worker critical,high", "worker default,low", "beat"])
        children = inst.ours()
        assert len(children) >= 6, children  # up, redis, web (+ its worker), two pools (+ processes), beat
        job_id = inst.submit("default", steps=20, step_ms=150)
        wait_for(lambda: inst.status(job_id) == "running", 30, 0.1, what="the job running")

        os.kill(inst.up.pid, signal.SIGTERM)
        assert inst.up.proc is not None and inst.up.proc.wait(timeout=90) == 0
        wait_for(lambda: not any(_alive(pid) for pid in children), 30, what="every child gone")
        assert inst.ours() == []
        with create_engine(inst.database_url).connect() as conn:  # the running job finished first
            status = conn.execute(text("SELECT status FROM jobs WHERE id = :id"), {"id": job_id}).scalar()
        assert status == "succeeded"
        out = inst.up.output()
        stopping = out.index("stopping (running jobs finish first)")
        assert "starting it again" not in out[stopping:] and "\nstopped" in out[stopping:]
    finally:
        inst.close()
