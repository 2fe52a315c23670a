"""questboard.supervisor's restart policy on real (tiny) processes: backoff, give-up, reset after a
healthy run, no start while stopping, leftovers of a dead role's process group reaped."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from questboard.supervisor import GAVE_UP, RUNNING, STOPPED, RestartPolicy, Role, Supervisor
from questboard.testing import wait_for
from shared import defaults

FAST = RestartPolicy(initial_backoff_s=0.2, max_backoff_s=0.8, reset_after_s=30, give_up_exits=4)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []

    def __call__(self, line: str) -> None:
        self.lines.append((time.monotonic(), line))

    def matching(self, pattern: str) -> list[tuple[float, str]]:
        return [(t, line) for t, line in self.lines if re.search(pattern, line)]


@pytest.fixture
def log() -> Recorder:
    return Recorder()


@pytest.fixture
def supervisor(log: Recorder) -> Iterator[Supervisor]:
    sup = Supervisor(log=log)
    yield sup
    sup.stop(timeout_s=5)


def state(sup: Supervisor, name: str) -> dict[str, Any]:
    return next(role for role in sup.snapshot()["roles"] if role["name"] == name)


def ticking(sup: Supervisor, condition: Callable[[], bool]) -> Callable[[], bool]:
    """``condition`` after one supervision round."""

    def check() -> bool:
        sup.tick()
        return condition()

    return check


def test_a_role_that_exits_at_once_is_restarted_with_doubling_backoff_then_given_up(supervisor, log):
    supervisor.add(Role("crasher", python("import sys; sys.exit(3)"), policy=FAST))
    supervisor.add(Role("steady", python("import time; time.sleep(60)")))
    steady_pid = state(supervisor, "steady")["pid"]

    wait_for(ticking(supervisor, lambda: state(supervisor, "crasher")["state"] == GAVE_UP), 20, 0.02)

    delays = [float(m) for _, line in log.lines for m in re.findall(r"again in ([\d.]+) s", line)]
    assert delays == [0.2, 0.4, 0.8]  # doubling, capped at max_backoff_s; the 4th exit gives up
    starts = [t for t, _ in log.matching(r"crasher started again")]
    stops = [t for t, _ in log.matching(r"crasher stopped")]
    assert all(start - stop >= delay for stop, start, delay in zip(stops, starts, delays, strict=True))
    gave_up = log.matching(r"GAVE UP on crasher")
    assert len(gave_up) == 1 and "exited 4 times" in gave_up[0][1] and "exit 3" in gave_up[0][1]

    crasher = state(supervisor, "crasher")
    assert crasher["pid"] is None and crasher["last_exit_code"] == 3 and crasher["restarts"] == 3
    steady = state(supervisor, "steady")  # the others keep running, untouched
    assert steady["state"] == RUNNING and steady["pid"] == steady_pid and steady["restarts"] == 0


def test_the_backoff_starts_over_after_a_healthy_run(supervisor, log):
    policy = RestartPolicy(initial_backoff_s=0.1, reset_after_s=0.3, give_up_exits=3, give_up_window_s=0.5)
    supervisor.add(Role("slow", python("import time; time.sleep(0.4)"), policy=policy))
    wait_for(ticking(supervisor, lambda: state(supervisor, "slow")["restarts"] >= 3), 20, 0.02)
    delays = [float(m) for _, line in log.lines for m in re.findall(r"again in ([\d.]+) s", line)]
    assert delays[:3] == [0.1, 0.1, 0.1]  # each run lasted past reset_after_s
    assert state(supervisor, "slow")["state"] != GAVE_UP  # exits 0.5 s apart never make 3 in 0.5 s


def test_nothing_is_started_again_once_stopping(supervisor, log):
    slow = RestartPolicy(initial_backoff_s=0.3)
    supervisor.add(Role("crasher", python("import sys; sys.exit(1)"), policy=slow))
    wait_for(ticking(supervisor, lambda: state(supervisor, "crasher")["state"] == "restarting"), 10, 0.02)
    supervisor.stop_requested = True  # what SIGTERM does
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        supervisor.tick()
        time.sleep(0.02)
    assert not log.matching("started again")
    supervisor.stop(timeout_s=5)
    assert state(supervisor, "crasher")["state"] == STOPPED


def test_a_dead_leader_s_process_group_is_reaped_before_the_restart(supervisor, tmp_path: Path):
    pid_file = tmp_path / "child.pid"
    # The leader forks a child that would outlive it (as pool processes and gunicorn's worker do), then dies.
    code = (
        "import os, sys, time\n"
        "child = os.fork()\n"
        "if child == 0:\n    time.sleep(60)\n    os._exit(0)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child))\n"
        "time.sleep(0.3)\n"
        "sys.exit(1)\n"
    )
    supervisor.add(Role("forker", python(code), policy=RestartPolicy(initial_backoff_s=5)))
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), 10, what="the child's pid")
    child = int(pid_file.read_text())
    wait_for(ticking(supervisor, lambda: state(supervisor, "forker")["state"] == "restarting"), 10, 0.02)
    wait_for(lambda: not _alive(child), defaults.SUPERVISOR_REAP_WAIT_S + 2, what="the orphan gone")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_a_worker_that_recycled_itself_is_started_again_at_once_and_never_given_up(supervisor, log):
    code = defaults.WORKER_RECYCLE_EXIT_CODE  # a thread-pool worker ending a stuck job (workers.threadpool)
    slow = RestartPolicy(initial_backoff_s=5, give_up_exits=2)
    supervisor.add(Role("recycler", python(f"import sys; sys.exit({code})"), policy=slow))
    wait_for(ticking(supervisor, lambda: state(supervisor, "recycler")["restarts"] >= 4), 20, 0.02)
    assert state(supervisor, "recycler")["state"] != GAVE_UP  # 4 exits, with give_up_exits=2
    assert not re.findall(r"again in", " ".join(line for _, line in log.lines))  # no backoff
    assert len(log.matching(r"recycler recycled itself")) >= 4
