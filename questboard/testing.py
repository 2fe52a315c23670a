"""Real processes for tests: a private redis-server, Celery workers and the web server on free ports.

Every process is started in its own process group and stopped by that group's id, never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import redis

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parent.parent


# Under pytest-xdist (tests/faults runs with `-n 2`) each worker process takes its ports from a range of
# its own, below the kernel's ephemeral ports: two workers never pick the same port, and a port one of
# them just freed is not handed to the other by the kernel between that pick and the server's bind.
XDIST_PORT_BASE = 20000
XDIST_PORT_SPAN = 2000
_next_port: dict[str, int] = {}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (from this pytest-xdist worker's range, if any)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    if not worker.removeprefix("gw").isdigit():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    first = XDIST_PORT_BASE + int(worker.removeprefix("gw")) * XDIST_PORT_SPAN
    for _ in range(XDIST_PORT_SPAN):
        offset = _next_port.get(worker, 0)
        _next_port[worker] = (offset + 1) % XDIST_PORT_SPAN
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", first + offset))
            except OSError:
                continue  # taken (or in TIME_WAIT): the next one
            return first + offset
    raise RuntimeError(f"no free port in {first}..{first + XDIST_PORT_SPAN - 1} for xdist worker {worker}")


def wait_for(
    condition: Callable[[], T], timeout_s: float = 10.0, interval_s: float = 0.05, what: str = "condition"
) -> T:
    """Poll ``condition`` until it returns something truthy; raise TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            value = condition()
            if value:
                return value
            last = value
        except Exception as exc:  # remembered and shown if the deadline passes
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what} (last outcome: {last!r})")
        time.sleep(interval_s)


class ManagedProcess:
    """A child in its own process group, with its output captured to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the child's lifetime
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(REPO_ROOT),
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        """SIGTERM to the leader only, as a supervisor stopping a service does (warm shutdown)."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, timeout_s: float = 20.0, sig: int = signal.SIGTERM) -> None:
        """``sig`` (default SIGTERM) to the leader, SIGKILL to the group after ``timeout_s``."""
        if self.proc is None:
            return
        if sig == signal.SIGTERM:
            self.terminate()
        else:
            self.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        # Children of the group that outlived their leader (pool processes) go too.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """SIGKILL to the whole group. Also a fixture's teardown once its test is over: a graceful stop only
        costs a second or two per process, and nothing the test checks happens after it (for processes
        whose children stay in their group: a worker and its pool, gunicorn and its workers)."""
        self.stop(timeout_s=5, sig=signal.SIGKILL)

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class RedisServer:
    """A private redis-server on a free port (can be stopped and started again on the same port)."""

    def __init__(
        self,
        base_dir: Path | None = None,
        port: int | None = None,
        appendonly: bool = True,
        password: str | None = None,
    ) -> None:
        self.dir = Path(base_dir or tempfile.mkdtemp(prefix="qb-redis-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.password = password  # requirepass: clients need it in the URL
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH (Debian: apt-get install redis-server)")
        argv = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always" if self.appendonly else "no",
        ]
        if self.password:  # tests only: a private server whose clients must authenticate
            argv += ["--requirepass", self.password]
        self.process = ManagedProcess(f"redis-{self.port}", argv, dict(os.environ), self.dir)
        self.process.start()
        wait_for(self.ping, 10, what=f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout_s=10)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


def questboard_env(redis_url: str, database_url: str, instance_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a Questboard process needs to talk to these services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUESTBOARD_", "CELERY_"))}
    env.update(
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        QUESTBOARD_INSTANCE_DIR=str(instance_dir),
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        PYTHONUNBUFFERED="1",
        QUESTBOARD_OFFLINE_PACE_MS="0",  # the offline provider at full speed; a test may set a pace
    )
    env.update(extra)
    return env


def worker_process(
    env: dict[str, str],
    log_dir: Path,
    queues: str = "critical,high,default,low",
    concurrency: int = 2,
    name: str | None = None,
    extra_args: list[str] | None = None,
    pool: str = "threads",
) -> ManagedProcess:
    """A real Celery worker on ``queues`` (``pool`` as `questboard worker --pool`: "threads", the default,
    "process" or "prefork"); start it, then ``wait_worker_ready``."""
    from questboard.cli import worker_argv

    name = name or f"w{free_port()}"
    # Exactly the command `questboard worker` runs.
    argv = [*worker_argv(queues, concurrency, name, pool=pool), *(extra_args or [])]
    return ManagedProcess(f"worker-{name}", argv, env, log_dir)


def wait_worker_ready(process: ManagedProcess, redis_url: str, timeout_s: float = 30.0) -> None:
    """Wait until the worker's heartbeat is in Redis (its maintenance loop runs, it consumes)."""
    from shared import defaults

    client = redis.Redis.from_url(redis_url, decode_responses=True)

    def ready() -> bool:
        if not process.alive():
            raise RuntimeError(f"worker exited:\n{process.output()[-3000:]}")
        return any(
            process.name.removeprefix("worker-") + "@" in key
            for key in client.scan_iter(match=defaults.WORKER_KEY_PREFIX + "*")
        )

    try:
        wait_for(ready, timeout_s, 0.1, what=f"{process.name} ready")
    finally:
        client.close()


def web_process(
    env: dict[str, str], log_dir: Path, port: int | None = None, workers: int = 1
) -> tuple[ManagedProcess, str]:
    """The production web server (shared.webserver: gunicorn, gevent) on a free port: (process, base_url)."""
    from shared.webserver import gunicorn_args

    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        *gunicorn_args(f"127.0.0.1:{port}", workers, 2, access_log=False),
    ]
    base_url = f"http://127.0.0.1:{port}"
    env = {**env, "QUESTBOARD_BASE_URL": base_url}
    return ManagedProcess(f"web-{port}", argv, env, log_dir), base_url


def http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback only
            return bool(response.status == 200)
    except OSError:
        return False
