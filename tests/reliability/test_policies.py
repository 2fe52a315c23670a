"""Priority pools, per-user limits across processes, concurrency keys, uniqueness, queue pause."""

from __future__ import annotations

import threading

import requests

from questboard.testing import http_ok, wait_for, web_process
from shared.accounts import Accounts
from shared.queues import QueueControl


def test_critical_job_overtakes_a_low_backlog(stack):
    # The pools `questboard up` runs: critical+high get their own processes; default+low share one.
    stack.start_worker("critical,high", concurrency=1, name="urgent")
    stack.start_worker("default,low", concurrency=1, name="bulk")
    backlog = [stack.submit("diagnostics.probe", {"step_ms": 20}, queue="low") for _ in range(300)]
    critical = stack.submit(
        "diagnostics.probe", queue="critical", system=True
    )  # above its own: system/admins
    done = stack.wait_status(critical, "succeeded", 30)
    still_waiting = sum(j.status == "queued" for j in stack.jobs(backlog))
    assert still_waiting > 200, f"critical job finished only after the backlog drained ({still_waiting} left)"
    assert done.worker.startswith("urgent@")


def test_eleventh_job_is_refused_under_concurrent_submission_from_two_web_processes(stack):
    stack.settings.user_job_limit = 10
    env = {**stack.env, "QUESTBOARD_USER_JOB_LIMIT": "10", "SECRET_KEY": "x"}
    servers = [web_process(env, stack.tmp_path) for _ in range(2)]
    for proc, _ in servers:
        stack.workers.append(proc)  # stopped with the stack
        proc.start()
    for _proc, url in servers:
        wait_for(lambda url=url: http_ok(url + "/healthz"), 30, what="web server")
    token = Accounts(stack.db_url).issue_api_token(stack.user)
    codes: list[int] = []
    barrier = threading.Barrier(24)

    def post(url: str) -> None:
        barrier.wait()
        resp = requests.post(
            f"{url}/api/jobs",
            json={"type": "diagnostics.probe"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        codes.append(resp.status_code)
        if resp.status_code == 429:
            assert int(resp.headers["Retry-After"]) > 0 and "limit" in resp.json()["error"]["message"]

    threads = [threading.Thread(target=post, args=(servers[i % 2][1],)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [202] * 10 + [429] * 14
    assert stack.service.active_count(stack.user) == 10
    assert stack.redis.client().llen("default") == 10  # nothing enqueued for the refused ones


def test_concurrency_key_holds_back_jobs_and_releases_them_in_turn(stack):
    stack.start_worker(concurrency=3, name="keyed")
    ids = [stack.submit("test.exclusive", {"seconds": 0.7, "key": "user-1"}) for _ in range(3)]
    other = stack.submit("test.exclusive", {"seconds": 0.1, "key": "user-2"})
    wait_for(lambda: any(j.status == "blocked" for j in stack.jobs(ids)), 20, what="a blocked job")
    stack.wait_status(other, "succeeded", 20)  # another key is not held back
    wait_for(lambda: all(j.status == "succeeded" for j in stack.jobs(ids)), 40, what="all keyed jobs")
    spans = sorted((j.started_at, j.finished_at) for j in stack.jobs(ids))
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, "two jobs with the same key ran at the same time"
    assert all(j.attempts == 1 for j in stack.jobs(ids))


def test_a_crashed_slot_holder_releases_its_slot(stack):
    victim = stack.start_worker(concurrency=1, name="holder")
    first = stack.submit("test.exclusive", {"seconds": 30, "key": "k"})
    stack.wait_status(first, "running")
    second = stack.submit("test.exclusive", {"seconds": 0.1, "key": "k"})
    # The cancel below ends a body that never reaches a progress point: on prefork its pool process is
    # replaced (a thread-pool worker would recycle itself, and no supervisor restarts it here).
    stack.start_worker(concurrency=1, name="next", pool="prefork")
    stack.wait_status(second, "blocked", 20)
    victim.kill()
    # The dead holder's slot is freed: its job is recovered and takes the slot again on the live worker
    # (it was first in line), and when it ends the next job of the key starts.
    wait_for(lambda: (j := stack.job(first)).status == "running" and j.attempts == 2, 30, what="re-run")
    assert stack.job(second).status == "blocked"
    stack.service.cancel(stack.user, first)
    stack.wait_status(first, "canceled", 10)
    stack.wait_status(second, "succeeded", 20)


def test_unique_type_returns_the_active_job(stack):
    first = stack.submit("test.unique", {"key": "record-7", "seconds": 0.5})
    again = stack.submit("test.unique", {"key": "record-7", "seconds": 0.5})
    other = stack.submit("test.unique", {"key": "record-8"})
    assert again == first and other != first
    stack.start_worker(concurrency=1, name="uniq")
    stack.wait_status(first, "succeeded", 20)
    assert stack.submit("test.unique", {"key": "record-7"}) != first  # no longer active: a new job


def test_paused_queue_is_not_consumed_even_after_a_worker_restart(stack):
    control = QueueControl(stack.db_url)
    worker = stack.start_worker("default", concurrency=1, name="pausable")
    control.set_paused("default", True, "ops@example.com")
    wait_for(
        lambda: (
            '"queues": []' in (stack.redis.client().get("questboard:worker:pausable@" + worker_host()) or "")
        ),
        10,
        what="the worker to stop consuming",
    )
    held = stack.submit("diagnostics.probe")
    worker.stop()
    restarted = stack.start_worker("default", concurrency=1, name="pausable2")
    # A queue it does not consume (above the probe's own: the system's path): just a clock.
    probe = stack.submit("diagnostics.probe", queue="high", system=True)
    assert restarted.alive()
    wait_for(lambda: stack.redis.client().llen("default") >= 1, 5, what="the job to wait in Redis")
    assert stack.job(held).status == "queued" and probe
    control.set_paused("default", False, "ops@example.com")
    stack.wait_status(held, "succeeded", 20)


def worker_host() -> str:
    import socket

    return socket.gethostname()
