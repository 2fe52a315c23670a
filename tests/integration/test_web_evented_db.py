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

from shared.testing import wait_for

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
