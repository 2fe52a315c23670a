"""Soak: mixed jobs at a steady rate for N minutes with a random fault every minute (not in the suite).

    python -m benchmarks.soak [--minutes 10] [--rate 1.0] [--fault-every 60] [--seed N]

A private Redis, the real web server (gunicorn), two workers — ``a`` reaches Redis through a loopback
proxy the soak can cut without closing, ``b`` directly — and a SQLite database. Jobs: ``fault.ledger``
(1–6 progress steps; each completed run recorded once in a ledger table with a unique key) and
``diagnostics.probe``. Faults, one each interval, in random order and each once before any repeats:
SIGKILL worker ``b`` (restarted at once), cut worker ``a`` from Redis for 20 s, freeze Redis (SIGSTOP)
for 10 s, restart Redis empty. At the end every accepted job must be ``succeeded``, every ledger job
completed exactly once, no submit answered 5xx other than 503, and each process tree that ran
throughout (same leader) grew its RSS by less than 10 % from the end of the first interval (the warm-up)
to the end. Exit status 1 if any of that fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import text

from questboard.testing import (
    ManagedProcess,
    RedisServer,
    http_ok,
    questboard_env,
    wait_for,
    wait_worker_ready,
    web_process,
    worker_process,
)
from shared.accounts import Accounts
from shared.db import get_engine, upgrade
from tests.faults.jobtypes import LEDGER_DDL
from tests.faults.proxy import LinkProxy

MODULES = "tests.faults.jobtypes"
RSS_GROWTH_LIMIT = 0.10
FINAL = {"succeeded", "failed", "canceled"}
FAULTS = ["kill_worker", "cut_worker", "freeze_redis", "restart_redis_empty"]


def tree_rss_kb(leader: int) -> int:
    """RSS (kB, from /proc) of ``leader`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [leader]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class Soak:
    """The installation, the load, the faults and the final checks; see the module docstring."""

    def __init__(self, base: Path, args: argparse.Namespace) -> None:
        self.base, self.args = base, args
        self.rng = random.Random(args.seed)
        self.db_url = f"sqlite:///{base / 'questboard.sqlite3'}"
        upgrade(self.db_url)
        with get_engine(self.db_url).begin() as conn:
            conn.execute(text(LEDGER_DDL))
        self.redis = RedisServer(base / "redis", appendonly=False).start()
        self._known_broker()
        self.proxy = LinkProxy("127.0.0.1", self.redis.port)
        person = Accounts(self.db_url).ensure_user("soak@example.com")
        self.token = Accounts(self.db_url).issue_api_token(person)
        self.workers: dict[str, ManagedProcess] = {}
        self.procs: list[ManagedProcess] = []
        for name in ("a", "b"):
            self.start_worker(name)
        self.web, self.base_url = web_process(self._env(self.redis.url), base)
        self.procs.append(self.web)
        self.web.start()
        wait_for(lambda: http_ok(self.base_url + "/healthz"), 30, what="web")
        self.accepted: dict[str, str] = {}  # job id -> type
        self.answers: dict[int, int] = {}
        self.faults: list[str] = []
        self._lock = threading.Lock()
        self._bag: list[str] = []
        self._faulting = threading.Event()  # a fault is killing / restarting a worker on purpose
        self.unexpected_exits: list[str] = []

    def _known_broker(self) -> None:
        self.redis.client().set("questboard:broker-epoch", f"soak:{time.time() - 3600}")

    def _env(self, redis_url: str) -> dict[str, str]:
        return questboard_env(redis_url, self.db_url, self.base / "i", SECRET_KEY="soak-secret",
                              QUESTBOARD_JOB_MODULES=MODULES)  # fmt: skip

    def start_worker(self, name: str) -> None:
        url = f"redis://127.0.0.1:{self.proxy.port}/0" if name == "a" else self.redis.url
        proc = worker_process(self._env(url), self.base, queues="default", name=name)
        self.procs.append(proc)
        self.workers[name] = proc
        proc.start()
        wait_worker_ready(proc, self.redis.url, timeout_s=60)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=20) as resp:  # noqa: S310 - loopback
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except OSError:
            return 0, None

    def submit(self) -> None:
        if self.rng.random() < 0.7:
            job = {"type": "fault.ledger", "params": {"steps": self.rng.randint(1, 6), "step_s": 0.5}}
        else:
            job = {"type": "diagnostics.probe"}
        status, body = self.call("POST", "/api/jobs", job)
        with self._lock:
            self.answers[status] = self.answers.get(status, 0) + 1
            if status == 202:
                self.accepted[body["id"]] = job["type"]

    # Faults -----------------------------------------------------------------------------------------
    def kill_worker(self) -> None:
        self._faulting.set()
        try:
            self.workers["b"].kill()
            self.start_worker("b")
        finally:
            self._faulting.clear()

    def replace_exited_workers(self) -> None:
        """A worker that exited on its own is counted (a failure) and started again, as ``up`` would."""
        if self._faulting.is_set():
            return
        for name, proc in list(self.workers.items()):
            if not proc.alive():
                line = next((ln for ln in reversed(proc.output().splitlines()) if "Unrecoverable" in ln), "")
                self.unexpected_exits.append(f"worker {name} at {time.strftime('%H:%M:%S')}: {line[:300]}")
                print(f"[{time.strftime('%H:%M:%S')}] worker {name} exited on its own; starting it again")
                self.start_worker(name)

    def cut_worker(self) -> None:
        self.proxy.cut()
        time.sleep(20)  # the fault's length
        self.proxy.heal()

    def freeze_redis(self) -> None:
        self.redis.process.send_signal(signal.SIGSTOP)
        time.sleep(10)  # the fault's length
        self.redis.process.send_signal(signal.SIGCONT)

    def restart_redis_empty(self) -> None:
        self.redis.stop()
        self.redis.start()
        self.proxy.drop_all()

    def run_fault(self) -> None:
        if not self._bag:  # every fault once, in random order, before any repeats
            self._bag = self.rng.sample(FAULTS, len(FAULTS))
        name = self._bag.pop()
        started = time.monotonic()
        getattr(self, name)()
        with self._lock:
            self.faults.append(f"{name} ({time.monotonic() - started:.1f} s)")
        print(f"[{time.strftime('%H:%M:%S')}] fault {name} done", flush=True)

    # The run ----------------------------------------------------------------------------------------
    def leaders(self) -> dict[str, int]:
        return {"web": self.web.pid, "redis": self.redis.process.pid, **{f"worker {n}": p.pid
                for n, p in self.workers.items()}}  # fmt: skip

    def run(self) -> int:
        duration = self.args.minutes * 60
        interval = 1.0 / self.args.rate
        started = time.monotonic()
        next_fault = started + self.args.fault_every
        baseline: dict[str, tuple[int, int]] | None = None
        fault_thread: threading.Thread | None = None
        while time.monotonic() - started < duration:
            tick = time.monotonic()
            self.submit()
            self.replace_exited_workers()
            if baseline is None and tick >= next_fault - 2:
                baseline = {role: (pid, tree_rss_kb(pid)) for role, pid in self.leaders().items()}
            if tick >= next_fault and (fault_thread is None or not fault_thread.is_alive()):
                fault_thread = threading.Thread(target=self.run_fault, daemon=True)
                fault_thread.start()
                next_fault += self.args.fault_every
            time.sleep(max(0.0, interval - (time.monotonic() - tick)))
        if fault_thread is not None:
            fault_thread.join()
        return self.check(baseline or {}, time.monotonic())

    def check(self, baseline: dict[str, tuple[int, int]], load_end: float) -> int:
        ok = True
        try:
            wait_for(lambda: self.replace_exited_workers() or self._all_final(), 180, 1.0, what="all final")
        except TimeoutError as exc:
            print(f"NOT FINAL: {exc}")
            ok = False
        drained = time.monotonic() - load_end
        statuses = self._statuses()
        with get_engine(self.db_url).connect() as conn:
            ledger = conn.execute(text("SELECT job_id FROM fault_ledger")).scalars().all()
        ledger_jobs = sorted(j for j, kind in self.accepted.items() if kind == "fault.ledger")
        not_succeeded = {j: s for j, s in statuses.items() if s != "succeeded"}
        twice = len(ledger) - len(set(ledger))  # the key is unique: stays 0 unless the table is altered
        missing = len(set(ledger_jobs) - set(ledger))
        ledger_ok = sorted(ledger) == ledger_jobs
        server_errors = {
            code: n for code, n in self.answers.items() if code >= 500 and code != 503 or code == 0
        }
        faults = "; ".join(self.faults)
        print(f"\nsoak: {self.args.minutes:g} min at {self.args.rate:g} jobs/s; faults: {faults}")
        print(f"submits answered: {dict(sorted(self.answers.items()))}; accepted {len(self.accepted)} "
              f"({len(ledger_jobs)} ledger, {len(self.accepted) - len(ledger_jobs)} probe)")  # fmt: skip
        print(
            f"every accepted job final {drained:.1f} s after the load stopped; not succeeded: {not_succeeded}"
        )
        print(f"ledger: {len(ledger)} completed runs for {len(ledger_jobs)} ledger jobs; never completed: "
              f"{missing}, completed twice: {twice}")  # fmt: skip
        print(f"workers that exited on their own: {len(self.unexpected_exits)}")
        for line in self.unexpected_exits:
            print(f"  {line}")
        ok = ok and not not_succeeded and ledger_ok and not server_errors and not self.unexpected_exits
        for role, pid in self.leaders().items():
            base_pid, base_kb = baseline.get(role, (None, 0))
            now_kb = tree_rss_kb(pid)
            if base_pid != pid:
                print(f"RSS {role}: restarted during the run (now {now_kb / 1024:.1f} MiB)")
                continue
            growth = (now_kb - base_kb) / base_kb if base_kb else 0.0
            print(f"RSS {role}: {base_kb / 1024:.1f} -> {now_kb / 1024:.1f} MiB ({growth:+.1%})")
            ok = ok and growth < RSS_GROWTH_LIMIT
        print("soak: PASS" if ok else "soak: FAIL")
        return 0 if ok else 1

    def _statuses(self) -> dict[str, str]:
        return {
            j: (self.call("GET", f"/api/jobs/{j}")[1] or {}).get("status", "?") for j in list(self.accepted)
        }

    def _all_final(self) -> bool:
        return all(s in FINAL for s in self._statuses().values())

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(timeout_s=10)
        self.proxy.close()
        self.redis.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the soak; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load, minutes")
    parser.add_argument("--rate", type=float, default=1.0, help="submits per second")
    parser.add_argument("--fault-every", type=float, default=60.0, help="seconds between faults")
    parser.add_argument("--seed", type=int, default=None, help="random seed (faults and job mix)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qb-soak-") as tmp:
        soak = Soak(Path(tmp), args)
        try:
            return soak.run()
        finally:
            soak.close()


if __name__ == "__main__":
    raise SystemExit(main())
