"""The supervisor behind ``questboard up``: start each role, restart one that exits, give up on a crash loop.

A role is a command line with its environment, the ports it binds and a restart policy. Each runs in its own
process group (a new session); only those groups are ever signalled. No Flask or Celery here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from questboard.ports import Port
from shared import defaults

RUNNING, RESTARTING, GAVE_UP, STOPPED = "running", "restarting", "gave-up", "stopped"


@dataclass(frozen=True)
class RestartPolicy:
    """Restart after a doubling backoff; give up after ``give_up_exits`` exits within the window."""

    restart: bool = True
    initial_backoff_s: float = defaults.SUPERVISOR_BACKOFF_INITIAL_S
    max_backoff_s: float = defaults.SUPERVISOR_BACKOFF_MAX_S
    reset_after_s: float = defaults.SUPERVISOR_BACKOFF_RESET_AFTER_S
    give_up_exits: int = defaults.SUPERVISOR_GIVE_UP_EXITS
    give_up_window_s: float = defaults.SUPERVISOR_GIVE_UP_WINDOW_S

    def backoff_s(self, consecutive_exits: int) -> float:
        """Seconds to wait before the next start, after this many exits in a row (1, 2, …)."""
        return min(self.max_backoff_s, self.initial_backoff_s * 2 ** max(0, consecutive_exits - 1))


@dataclass(frozen=True)
class Role:
    """One supervised process: ``name``, ``argv``, extra ``env``, the ``ports`` it binds, its ``policy``.

    ``stop_last`` roles (the private Redis) are stopped after the others, so finishing jobs can still ack.
    ``on_exit(pid)`` runs when the role died unasked, before it is started again (beat: release its lock).
    """

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    policy: RestartPolicy = RestartPolicy()
    stop_last: bool = False
    on_exit: Callable[[int], None] | None = None


def describe_exit(code: int | None) -> str:
    """``exit 1``, ``killed by SIGKILL``…"""
    if code is None:
        return "did not start"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def _group_lives(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies do not count: they hold no port)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return True  # no /proc: the signal test above is all there is
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()  # state, ppid, pgrp, …
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _iso(wall: float | None) -> str | None:
    return datetime.fromtimestamp(wall, UTC).isoformat().replace("+00:00", "Z") if wall else None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class _Supervised:
    role: Role
    proc: subprocess.Popen[bytes] | None = None
    state: str = STOPPED
    restarts: int = 0
    last_exit_code: int | None = None
    last_exit: str | None = None
    last_exit_at: float | None = None
    since: float = 0.0  # wall time of the last state change
    started_mono: float = 0.0
    consecutive: int = 0  # exits since the role last ran healthy for ``reset_after_s``
    exits: deque[float] = field(default_factory=deque)  # monotonic times within the give-up window
    next_start_mono: float = 0.0

    def snapshot(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.role.name,
            "state": self.state,
            "pid": self.proc.pid if self.proc is not None and self.state == RUNNING else None,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
            "last_exit": self.last_exit,
            "last_exit_at": _iso(self.last_exit_at),
            "since": _iso(self.since),
        }
        if self.state == RESTARTING:
            entry["restart_in_s"] = round(max(0.0, self.next_start_mono - time.monotonic()), 1)
        return entry


class Supervisor:
    """Runs roles, restarts them by their policy, stops them warm. Drive it with ``run()`` (or ``tick()``)."""

    def __init__(
        self,
        log: Callable[[str], None] = _stderr,
        on_change: Callable[[dict[str, Any]], None] | None = None,
        poll_interval_s: float = defaults.SUPERVISOR_POLL_INTERVAL_S,
    ) -> None:
        self._log = log
        self.on_change = on_change
        self._poll_interval_s = poll_interval_s
        self._roles: list[_Supervised] = []
        self.stop_requested = False
        self._stopping = False
        self._stopped = False

    # ----- set-up --------------------------------------------------------------------------------

    def handle_signals(self) -> None:
        """SIGINT and SIGTERM ask for a warm stop (the loop notices within one poll interval)."""
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)

    def _request_stop(self, _signum: int, _frame: object) -> None:
        self.stop_requested = True

    def add(self, role: Role, start: bool = True) -> None:
        """Supervise ``role`` (and start it now unless ``start`` is false)."""
        entry = _Supervised(role, since=time.time())
        self._roles.append(entry)
        if start:
            self._start(entry)

    def alive(self, name: str) -> bool:
        """Whether the role's current process runs."""
        entry = next(entry for entry in self._roles if entry.role.name == name)
        return entry.proc is not None and entry.proc.poll() is None

    # ----- the loop ------------------------------------------------------------------------------

    def run(self, before_last: Callable[[], None] | None = None) -> int:
        """Supervise until SIGINT/SIGTERM, then ``stop(before_last=…)``. 0, or 1 if every role gave up."""
        code = 0
        self._changed()
        while not self.stop_requested:
            self.tick()
            if self._roles and all(entry.state == GAVE_UP for entry in self._roles):
                self._log("questboard up: every role gave up; nothing is left to supervise")
                code = 1
                break
            time.sleep(self._poll_interval_s)
        self.stop(before_last=before_last)
        return code

    def tick(self) -> None:
        """Notice roles that exited, start the ones whose backoff is over."""
        now = time.monotonic()
        for entry in self._roles:
            if entry.state == RUNNING and entry.proc is not None and entry.proc.poll() is not None:
                self._reap_group(entry.proc.pid)
                self._after_exit(entry, entry.proc.pid)
                self._exited(entry, entry.proc.returncode, describe_exit(entry.proc.returncode), now)
            stopping = self.stop_requested or self._stopping
            if entry.state == RESTARTING and now >= entry.next_start_mono and not stopping:
                entry.restarts += 1
                self._start(entry)

    def _after_exit(self, entry: _Supervised, pid: int) -> None:
        if entry.role.on_exit is None or self.stop_requested or self._stopping:
            return
        try:
            entry.role.on_exit(pid)
        except Exception as exc:  # a clean-up that failed must not stop supervision
            self._log(f"questboard up: clean-up after {entry.role.name} failed: {type(exc).__name__}: {exc}")

    def _start(self, entry: _Supervised) -> None:
        entry.started_mono = 0.0  # until it runs: a failed start does not count as a healthy run
        taken = [port for port in entry.role.ports if port.taken()]
        if taken:  # a foreign process took the port while the role was down: a failed start
            self._exited(entry, None, taken[0].problem(), time.monotonic())
            return
        try:
            entry.proc = subprocess.Popen(
                entry.role.argv, env={**os.environ, **entry.role.env}, start_new_session=True
            )
        except OSError as exc:  # e.g. the program is gone: a failed start like any other
            self._exited(entry, None, f"could not start: {exc}", time.monotonic())
            return
        entry.state, entry.since, entry.started_mono = RUNNING, time.time(), time.monotonic()
        if entry.restarts:
            self._log(f"questboard up: {entry.role.name} started again (pid {entry.proc.pid})")
        self._changed()

    def _exited(self, entry: _Supervised, code: int | None, why: str, now: float) -> None:
        policy = entry.role.policy
        entry.last_exit_code, entry.last_exit, entry.last_exit_at = code, why, time.time()
        entry.since = entry.last_exit_at
        if self._stopping or self.stop_requested or not policy.restart:
            entry.state = STOPPED
            self._changed()
            return
        if code == defaults.WORKER_RECYCLE_EXIT_CODE:  # a worker recycled itself: not a crash
            entry.state, entry.next_start_mono = RESTARTING, now
            self._log(f"questboard up: {entry.role.name} recycled itself ({why}); starting it again now")
            self._changed()
            return
        if entry.started_mono and now - entry.started_mono >= policy.reset_after_s:
            entry.consecutive = 0  # it had run healthy: start over from the initial backoff
        entry.consecutive += 1
        entry.exits.append(now)
        while entry.exits and now - entry.exits[0] > policy.give_up_window_s:
            entry.exits.popleft()
        if len(entry.exits) >= policy.give_up_exits:
            entry.state = GAVE_UP
            self._log(
                f"questboard up: GAVE UP on {entry.role.name}: it exited {len(entry.exits)} times within "
                f"{policy.give_up_window_s:.0f} s (last: {why}). The other roles keep running; fix the "
                f"cause, then restart 'questboard up'."
            )
        else:
            delay = policy.backoff_s(entry.consecutive)
            entry.state, entry.next_start_mono = RESTARTING, now + delay
            self._log(f"questboard up: {entry.role.name} stopped ({why}); starting it again in {delay:g} s")
        self._changed()

    def _reap_group(self, pgid: int) -> None:
        """SIGKILL what is left of a dead role's group (pool processes, gunicorn's worker) and let it go."""
        deadline = time.monotonic() + defaults.SUPERVISOR_REAP_WAIT_S
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return  # the group is empty
        while _group_lives(pgid) and time.monotonic() < deadline:
            time.sleep(0.02)

    # ----- state ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every role's state, pid, restarts and last exit, as /readyz and the console show them."""
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "stopping": self._stopping or self.stop_requested,
            "updated_at": _iso(time.time()),
            "roles": [entry.snapshot() for entry in self._roles],
        }

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.snapshot())

    # ----- stopping ------------------------------------------------------------------------------

    def stop(
        self,
        timeout_s: float = defaults.SUPERVISOR_STOP_TIMEOUT_S,
        before_last: Callable[[], None] | None = None,
    ) -> None:
        """SIGTERM every role (services first, then ``before_last()``, then the ``stop_last`` ones), wait,
        SIGKILL what is left. No role is started again once this began; a second call does nothing."""
        if self._stopped:
            return
        self._stopped = self._stopping = True
        if any(e.proc is not None and e.proc.poll() is None for e in self._roles):
            self._log("questboard up: stopping (running jobs finish first)...")
        self._changed()
        self._stop_group([e for e in self._roles if not e.role.stop_last], timeout_s)
        self._changed()
        if before_last is not None:
            before_last()
        self._stop_group([e for e in self._roles if e.role.stop_last], timeout_s)

    def _stop_group(self, entries: list[_Supervised], timeout_s: float) -> None:
        """A warm shutdown: SIGTERM to each leader only (a worker finishes its running jobs, then stops
        its own pool processes); after ``timeout_s`` SIGKILL to the group."""
        running = [e for e in reversed(entries) if e.proc is not None and e.proc.poll() is None]
        for entry in running:
            try:
                os.kill(entry.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout_s
        for entry in running:
            assert entry.proc is not None
            try:
                entry.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._log(f"questboard up: {entry.role.name} did not stop in {timeout_s:g} s; killing it")
                self._reap_group(entry.proc.pid)
                entry.proc.wait()
        for entry in running:  # pool processes that outlived their leader
            assert entry.proc is not None
            self._reap_group(entry.proc.pid)
        for entry in entries:
            if entry.state != GAVE_UP:
                entry.state, entry.since = STOPPED, time.time()
