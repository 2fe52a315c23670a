"""A probe job through a real Redis and a real Celery worker process, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from questboard.testing import wait_for


@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url  # run every test here on both databases


def _job(client, person, job_id):
    return client.get(f"/api/jobs/{job_id}", headers=person.headers).get_json()


def test_probe_goes_queued_running_succeeded_with_its_events(client, alice, worker):
    resp = client.post(
        "/api/jobs", json={"type": "diagnostics.probe", "params": {"steps": 4}}, headers=alice.headers
    )
    assert resp.status_code == 202
    job_id = resp.get_json()["id"]
    done = wait_for(
        lambda: (j := _job(client, alice, job_id))["status"] == "succeeded" and j, 30, what="probe to succeed"
    )
    assert done["progress"] == 100 and done["attempts"] == 1
    assert done["result"] == {"steps": 4, "attempt": 1}
    assert done["started_at"] and done["finished_at"] and done["started_at"] <= done["finished_at"]
    events = client.get(f"/api/jobs/{job_id}/events", headers=alice.headers).get_json()
    statuses = [e["status"] for e in events]
    assert statuses[0] == "queued" and statuses[1] == "running" and statuses[-1] == "succeeded"
    assert [e["progress"] for e in events if e["status"] == "running"] == [0, 25, 50, 75, 100]


def test_probe_failing_first_attempts_is_retried_and_succeeds(client, alice, worker):
    resp = client.post(
        "/api/jobs",
        json={"type": "diagnostics.probe", "params": {"fail_first_attempts": 2}},
        headers=alice.headers,
    )
    job_id = resp.get_json()["id"]
    done = wait_for(lambda: (j := _job(client, alice, job_id))["status"] == "succeeded" and j, 30)
    assert done["attempts"] == 3
    statuses = [
        e["status"] for e in client.get(f"/api/jobs/{job_id}/events", headers=alice.headers).get_json()
    ]
    assert statuses.count("retrying") == 2


def test_probe_failing_always_ends_failed_with_its_error(client, alice, worker):
    resp = client.post(
        "/api/jobs",
        json={"type": "diagnostics.probe", "params": {"fail_always": True}},
        headers=alice.headers,
    )
    job_id = resp.get_json()["id"]
    done = wait_for(lambda: (j := _job(client, alice, job_id))["status"] == "failed" and j, 40)
    assert done["attempts"] == done["max_attempts"] == 3
    assert done["error"]["type"] == "TransientError"


def test_character_generation_produces_a_character(client, alice, worker):
    params = {
        "name": "Mira Thorn",
        "race": "Elf",
        "char_class": "Ranger",
        "level": 5,
        "alignment": "Chaotic Good",
    }
    resp = client.post(
        "/api/jobs", json={"type": "character.generate", "params": params}, headers=alice.headers
    )
    job_id = resp.get_json()["id"]
    done = wait_for(lambda: (j := _job(client, alice, job_id))["status"] == "succeeded" and j, 30)
    progress = [
        e["progress"]
        for e in client.get(f"/api/jobs/{job_id}/events", headers=alice.headers).get_json()
        if e["status"] == "running"
    ]
    assert [p for p in progress if p in (25, 75, 100)] == [25, 75, 100]
    assert done["result"]["url"].startswith("/characters/")
