"""The evented web on PostgreSQL: a request waiting on the database yields to the others (issue 19).

The web processes are gevent: if psycopg waited for the server in C instead of through gevent (it
chooses at import time, so the process must be patched first), one slow statement would stop every
other request of its process. A lock held by another session makes GET /api/jobs wait in PostgreSQL
while /healthz is asked on the same, single, web process.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
import requests

from questboard.testing import http_ok, wait_for, web_process
from shared import defaults
from tests.faults.proxy import LinkProxy

pytestmark = pytest.mark.postgres
LOCK_WAITERS = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%jobs%'"


@pytest.fixture
def db_url(postgres_url: str) -> str:
    return postgres_url


def test_a_request_waiting_on_postgresql_does_not_hold_up_its_process(live_server, alice, db_url):
    outcome: dict[str, object] = {}

    def list_jobs() -> None:
        response = requests.get(live_server + "/api/jobs", headers=alice.headers, timeout=30)
        outcome["status"] = response.status_code

    with psycopg.connect(db_url.replace("+psycopg", "")) as locker:
        locker.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        waiting = threading.Thread(target=list_jobs)
        waiting.start()
        with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as watcher:
            wait_for(
                lambda: watcher.execute(LOCK_WAITERS).fetchone()[0],
                10,
                what="the request to wait on the lock",
            )
        for _ in range(5):  # the same single process answers while its other request waits
            began = time.monotonic()
            assert requests.get(live_server + "/healthz", timeout=2).status_code == 200
            assert time.monotonic() - began < 2
        assert waiting.is_alive() and "status" not in outcome  # still waiting in the database
        locker.rollback()
    waiting.join(30)
    assert outcome["status"] == 200


def test_a_cut_database_link_answers_503_in_time_while_the_process_serves_others(
    tmp_path, env, alice, db_url
):
    """The statement deadline (shared.dbdeadline) is a background task: it must run beside the stuck one."""
    proxy = LinkProxy("127.0.0.1", 5432)
    through_proxy = db_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    proc, base = web_process({**env, "DATABASE_URL": through_proxy}, tmp_path)
    proc.start()
    try:
        wait_for(lambda: http_ok(base + "/healthz"), 30, what="web server")
        assert requests.get(base + "/api/jobs", headers=alice.headers, timeout=10).status_code == 200
        proxy.cut()  # the link stops moving bytes, without closing
        outcome: dict[str, float] = {}

        def list_jobs() -> None:
            began = time.monotonic()
            outcome["status"] = requests.get(
                base + "/api/jobs", headers=alice.headers, timeout=30
            ).status_code
            outcome["took_s"] = time.monotonic() - began

        stuck = threading.Thread(target=list_jobs)
        stuck.start()
        while stuck.is_alive():  # the process answers others while that statement is stuck
            assert requests.get(base + "/healthz", timeout=2).status_code == 200
            time.sleep(0.2)
        assert outcome["status"] == 503
        assert outcome["took_s"] < defaults.DB_WEB_STATEMENT_DEADLINE_S + defaults.DB_POOL_TIMEOUT_S + 5
    finally:
        proc.stop(timeout_s=10)
        proxy.heal()
        proxy.close()
