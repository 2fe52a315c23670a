"""Network splits between namespaced hosts (tests/faults/hosts.py): each role a real process on its host.

A cut takes the host's port on one network's bridge down: its packets stop, nothing is closed. Every test
keeps the ledger (``fault.ledger`` records each completed run under a unique job id): every accepted job
ends in exactly one final state, no body completed twice, the recovery time is printed, and /readyz
answers 200 afterwards.

Waits are conditions with deadlines sized for a busy 2-core machine (the suite runs with ``-n 2``); the
recovery bound is not one of them: it is checked on the times the jobs record (``started_at``, written by
the worker that claimed them), so a slow poll can neither fail it nor hide a late recovery.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from sqlalchemy import text

from questboard.testing import wait_for
from shared import defaults
from shared.db import get_engine
from tests.faults.hosts import READY_S, Hosts
from tests.faults.jobtypes import LEDGER_DDL
from tests.faults.netns import netem_unavailable_reason

RECOVERY_BOUND_S = 15.0
ANSWER_BOUND_S = 15.0
FINAL_S = 180.0  # deadline for every job to end after healing (jobs of 20 s, some run twice)
# Namespaced hosts, two workers, 30-40 s cuts and a busy machine: more than the suite's default 300 s.
pytestmark = pytest.mark.timeout(600)


def _ledger(hosts: Hosts) -> None:
    with get_engine(hosts.database_url).begin() as conn:
        conn.execute(text(LEDGER_DDL))


def _check_ledger(hosts: Hosts, what: str, healed_at: float) -> None:
    wait_for(hosts.all_final, FINAL_S, 0.3, what="every accepted job final")
    print(f"{what}: every job final {time.monotonic() - healed_at:.2f} s after the link healed")
    assert hosts.statuses() == dict.fromkeys(hosts.accepted, "succeeded")
    with get_engine(hosts.database_url).connect() as conn:
        rows = conn.execute(text("SELECT job_id, attempt FROM fault_ledger")).all()
    ledger = [row[0] for row in rows]
    print(f"{what}: completed runs by attempt {sorted(row[1] for row in rows)}")
    assert sorted(ledger) == sorted(hosts.accepted)  # each completed once (the key is unique)
    wait_for(lambda: hosts.request("GET", "/readyz")[0] == 200, READY_S, 0.5, what="/readyz 200 again")


def _running_two_holding_two(hosts: Hosts) -> list[str]:
    """Four 20 s jobs on w1 (2 processes, prefetch 2): 2 run, 2 wait in its prefetch; returns the held.

    20 s: long enough that they still run, and are still held, once w2 is up on a busy machine.
    """
    for _ in range(4):
        assert hosts.submit(steps=40)[0] == 202

    def held() -> list[str]:
        statuses = hosts.statuses()
        queued = [j for j, status in statuses.items() if status == "queued"]
        running = list(statuses.values()).count("running")
        empty = hosts.local_redis().llen("default") == 0
        return queued if running == 2 and len(queued) == 2 and empty else []

    return wait_for(held, READY_S, 0.2, what="w1 running 2 jobs and holding 2")


def _start_standby_while_held(hosts: Hosts, held: list[str]) -> None:
    """w2 comes up; w1 must still run 2 and hold ``held`` (else the fault would test nothing)."""
    hosts.start_worker("w2")
    statuses = hosts.statuses()
    assert list(statuses.values()).count("running") == 2, statuses
    assert all(statuses[j] == "queued" for j in held), statuses


def _held_recovered_in_time(hosts: Hosts, held: list[str], cut_wall: float, what: str) -> None:
    """The held jobs started on the other host within RECOVERY_BOUND_S of the cut (their started_at)."""
    wait_for(lambda: all(hosts.status(j) != "queued" for j in held), READY_S, 0.2, what="held jobs started")
    started = [datetime.fromisoformat(hosts.job(j)["started_at"]).timestamp() - cut_wall for j in held]
    after = ", ".join(f"{s:.2f}" for s in started)
    print(f"\n{what}: its {len(held)} held jobs started on the other host {after} s after the cut")
    assert max(started) < RECOVERY_BOUND_S, f"held jobs started {started} s after the cut"


def _consuming(hosts: Hosts, host: str) -> list[str] | None:
    """The queues the worker on ``host`` consumes, as its heartbeat reports them (None: no heartbeat)."""
    redis = hosts.local_redis()
    for key in redis.scan_iter(match=f"{defaults.WORKER_KEY_PREFIX}{host}@*"):
        beat = redis.get(key)
        if beat:
            return list(json.loads(beat)["queues"])
    return None


def test_worker_host_cut_from_redis_for_40_s_loses_nothing(hosts_for, sqlite_url: str):
    hosts = hosts_for(sqlite_url)
    _ledger(hosts)
    hosts.start_worker("w1", "--prefetch-multiplier", "2")
    held = _running_two_holding_two(hosts)
    _start_standby_while_held(hosts, held)
    hosts.net.cut("w1", "redis")
    cut_at, cut_wall = time.monotonic(), time.time()
    for _ in range(2):
        assert hosts.submit(steps=2)[0] == 202  # accepted during the cut, run by w2
    _held_recovered_in_time(hosts, held, cut_wall, "worker host cut from Redis")
    wait_for(lambda: time.monotonic() - cut_at >= 40, 45, 0.5, what="the cut to last 40 s")
    hosts.net.heal("w1", "redis")
    _check_ledger(hosts, "worker host cut from Redis", time.monotonic())


def test_web_host_cut_from_redis_answers_in_time_and_loses_nothing(hosts_for, sqlite_url: str):
    hosts = hosts_for(sqlite_url)
    _ledger(hosts)
    hosts.start_worker("w1")
    wait_for(lambda: hosts.request("GET", "/readyz")[0] == 200, READY_S, 0.3, what="ready before the cut")
    hosts.net.cut("web", "redis")
    cut_at = time.monotonic()
    answers = []
    for _ in range(3):
        status, body, headers, took = hosts.submit(steps=2)
        answers.append((status, round(took, 2)))
        assert took < ANSWER_BOUND_S and status in (202, 503), (status, body)
        if status == 503:
            assert body["error"]["code"] == "unavailable" and headers.get("Retry-After")
    print(f"\nweb host cut from Redis: submits answered {answers}")
    status, body, _, took = hosts.request("GET", "/readyz")
    print(f"web host cut from Redis: /readyz answered {status} after {took:.2f} s: {body}")
    assert status == 503 and "redis" in body["failed"]
    wait_for(lambda: time.monotonic() - cut_at >= 20, 25, 0.5, what="the cut to last 20 s")
    hosts.net.heal("web", "redis")
    assert hosts.accepted, "no submit was accepted during the cut"
    _check_ledger(hosts, "web host cut from Redis", time.monotonic())


def test_worker_host_cut_from_the_database_loses_nothing_and_commits_once(hosts_for, postgres_url: str):
    hosts = hosts_for(postgres_url)
    _ledger(hosts)
    hosts.start_worker("w1", "--prefetch-multiplier", "2")
    held = _running_two_holding_two(hosts)
    _start_standby_while_held(hosts, held)
    hosts.net.cut("w1", "db")
    cut_at, cut_wall = time.monotonic(), time.time()
    for _ in range(2):
        assert hosts.submit(steps=2)[0] == 202  # accepted during the cut, run by w2
    _held_recovered_in_time(hosts, held, cut_wall, "worker host cut from the database")
    # Cut from the database, w1 takes no message (else it takes back each one it gave back, and a job
    # w2 could run waits for whichever wins the race each time); it consumes again once healed.
    wait_for(lambda: _consuming(hosts, "w1") == [], READY_S, 0.2, what="w1 to stop consuming")
    wait_for(lambda: time.monotonic() - cut_at >= 30, 35, 0.5, what="the cut to last 30 s")
    hosts.net.heal("w1", "db")
    wait_for(lambda: _consuming(hosts, "w1") == ["default"], READY_S, 0.2, what="w1 to consume again")
    _check_ledger(hosts, "worker host cut from the database", time.monotonic())


def test_worker_host_with_200_ms_delay_and_5_percent_loss_finishes_everything_once(
    hosts_for, sqlite_url: str
):
    reason = netem_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    hosts = hosts_for(sqlite_url)
    _ledger(hosts)
    hosts.start_worker("w1")
    hosts.start_worker("w2")
    hosts.net.impair("w1", "redis", delay_ms=200, loss_pct=5)
    started = time.monotonic()
    try:
        for _ in range(8):
            assert hosts.submit(steps=4)[0] == 202
        wait_for(hosts.all_final, FINAL_S, 0.5, what="every job final under delay and loss")
    finally:
        hosts.net.unimpair("w1", "redis")
    print(
        f"\nworker host with 200 ms delay + 5 % loss: 8 jobs final after {time.monotonic() - started:.2f} s"
    )
    _check_ledger(hosts, "worker host with delay and loss", time.monotonic())
