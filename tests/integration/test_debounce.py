"""Debounce (contract §3): a burst of submits with one ``debounce_key`` is one job, run once by a real worker
after the last submit + ``debounce_seconds`` with the last params, on SQLite and PostgreSQL; concurrent
submits cannot make a second job; bad debounce input is a 422 with fields."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select

from shared.db import get_sessionmaker
from shared.models import Job, JobAttempt
from tests.integration.helpers_app import wait_finished

WINDOW_S = 2


@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url


def debounced(client, person, steps: int, key: str = "sync", seconds: float = WINDOW_S, **extra):
    body = {
        "type": "diagnostics.probe",
        "params": {"steps": steps},
        "debounce_key": key,
        "debounce_seconds": seconds,
        **extra,
    }
    return client.post("/api/jobs", json=body, headers=person.headers)


def at(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


def rows(settings, key: str) -> list[Job]:
    with get_sessionmaker(settings.resolved_database_url)() as db:
        return list(db.scalars(select(Job).where(Job.debounce_key == key)))


def attempts_of(settings, job_id: str) -> int:
    with get_sessionmaker(settings.resolved_database_url)() as db:
        return len(db.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id)).all())


def test_a_burst_runs_once_after_its_last_submit_with_the_last_params(client, alice, settings, worker):
    answers = []
    for steps in range(1, 6):
        sent_at = datetime.now(UTC)
        resp = debounced(client, alice, steps)
        answers.append((sent_at, resp.status_code, resp.get_json()))
    first, repeats = answers[0], answers[1:]
    assert first[1] == 202 and first[2]["status"] == "scheduled", first
    assert first[2]["debounce_key"] == "sync"
    assert [code for _, code, _ in repeats] == [200] * 4, repeats
    assert {job["id"] for _, _, job in answers} == {first[2]["id"]}
    last_sent, _, last = answers[-1]
    # Each repeat moved the run time to its own submit + the window, and took its params.
    assert last["params"]["steps"] == 5 and last["status"] == "scheduled"
    assert at(last["scheduled_at"]) >= last_sent + timedelta(seconds=WINDOW_S) - timedelta(milliseconds=50)
    assert at(last["scheduled_at"]) > at(first[2]["scheduled_at"])
    waiting = client.get(f"/api/jobs/{last['id']}", headers=alice.headers).get_json()["waiting_reason"]
    assert waiting["code"] == "scheduled" and waiting["until"] == last["scheduled_at"]
    assert "debounce key sync moves it" in waiting["message"], waiting

    done = wait_finished(client, alice, first[2]["id"], timeout_s=30)
    assert done["status"] == "succeeded" and done["params"]["steps"] == 5
    assert at(done["started_at"]) >= at(last["scheduled_at"])  # not before the last submit + window
    assert attempts_of(settings, done["id"]) == 1 and len(rows(settings, "sync")) == 1

    # Once it was released, the next submit with the key starts the next burst.
    resp = debounced(client, alice, 7)
    assert resp.status_code == 202 and resp.get_json()["id"] != done["id"]


def test_submits_around_the_due_time_never_start_a_job_early_or_with_old_params(client, alice, worker):
    """Each submit lands near the moment the previous job falls due, so some repeats race the release: a
    repeat either moved the job (and it starts no earlier than the moved time, with its params) or lost
    and started the next job."""
    answered: dict[str, list[dict]] = {}
    rng = random.Random(20)
    for steps in range(1, 13):
        resp = debounced(client, alice, steps, key="edge", seconds=1)
        assert resp.status_code in (200, 202), resp.get_json()
        job = resp.get_json()
        answered.setdefault(job["id"], []).append(job)
        time.sleep(rng.uniform(0.8, 1.2))  # pacing the submits around the window, not waiting for a state
    assert len(answered) > 1  # the bursts were split by releases
    for job_id, answers in answered.items():
        done = wait_finished(client, alice, job_id, timeout_s=30)
        assert done["status"] == "succeeded"
        assert at(done["started_at"]) >= max(at(a["scheduled_at"]) for a in answers), (done, answers)
        assert done["params"]["steps"] == answers[-1]["params"]["steps"], (done, answers)


def test_an_idempotent_retry_of_a_debounced_submit_gets_its_job_back_untouched(client, alice):
    first = debounced(client, alice, 1, key="idem", idempotency_key="req-1").get_json()
    again = debounced(client, alice, 2, key="idem", idempotency_key="req-1")
    assert again.status_code == 200
    assert (
        again.get_json()["params"]["steps"] == 1 and again.get_json()["scheduled_at"] == first["scheduled_at"]
    )
    moved = debounced(client, alice, 3, key="idem", idempotency_key="req-2")
    assert moved.status_code == 200 and moved.get_json()["id"] == first["id"]
    assert moved.get_json()["params"]["steps"] == 3
    messages = [
        e["message"] for e in client.get(f"/api/jobs/{first['id']}/events", headers=alice.headers).get_json()
    ]
    assert messages[0] == "Scheduled" and messages[-1].startswith("Debounced: submitted again"), messages


def test_concurrent_submits_from_two_web_processes_make_one_job(app, alice, settings, live_server):
    """Half the submits go through this process's app, half through the real web server (another
    process), all released at once by a barrier."""
    threads, answers = 8, []
    barrier = threading.Barrier(threads)
    lock = threading.Lock()
    body = {"type": "diagnostics.probe", "debounce_key": "race", "debounce_seconds": 60}

    def submit(n: int) -> None:
        client = app.test_client()
        barrier.wait()
        if n % 2:
            resp = requests.post(f"{live_server}/api/jobs", json=body, headers=alice.headers, timeout=30)
            answer = (resp.status_code, resp.json())
        else:
            local = client.post("/api/jobs", json=body, headers=alice.headers)
            answer = (local.status_code, local.get_json())
        with lock:
            answers.append(answer)

    workers = [threading.Thread(target=submit, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(30)
    codes = sorted(code for code, _ in answers)
    assert codes == [200] * (threads - 1) + [202], answers
    assert len({job["id"] for _, job in answers}) == 1
    [job] = rows(settings, "race")
    assert job.status == "scheduled"


def test_keys_users_and_types_are_separate(client, alice, bob, settings):
    a = debounced(client, alice, 1, key="k").get_json()
    assert debounced(client, bob, 1, key="k").get_json()["id"] != a["id"]  # another owner: its own job
    assert debounced(client, alice, 1, key="other").get_json()["id"] != a["id"]
    resp = client.post(
        "/api/jobs",
        json={
            "type": "report.export",
            "params": {"kind": "jobs", "format": "csv"},
            "debounce_key": "k",
            "debounce_seconds": 5,
        },
        headers=alice.headers,
    )
    assert resp.status_code == 202 and resp.get_json()["id"] != a["id"]
    # Bob sees nothing of Alice's job through his repeat.
    assert client.get(f"/api/jobs/{a['id']}", headers=bob.headers).status_code == 404


def test_a_repeat_is_not_refused_by_the_per_user_limit(app, client, alice):
    limit = app.extensions["questboard"].jobs.user_job_limit
    first = debounced(client, alice, 1, key="cap", seconds=600)
    for _ in range(limit - 1):
        debounced(client, alice, 1, key=f"fill-{_}", seconds=600)
    assert debounced(client, alice, 1, key="fresh", seconds=600).status_code == 429
    resp = debounced(client, alice, 2, key="cap", seconds=600)
    assert resp.status_code == 200 and resp.get_json()["id"] == first.get_json()["id"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"debounce_seconds": 0}, "debounce_seconds"),
        ({"debounce_seconds": 86401}, "debounce_seconds"),
        ({"debounce_seconds": None}, "debounce_seconds"),
        ({"debounce_key": None}, "debounce_key"),
        ({"debounce_key": ""}, "debounce_key"),
        ({"debounce_key": "k" * 201}, "debounce_key"),
        ({"delay_seconds": 5}, "delay_seconds"),
        ({"run_at": "2030-01-01T00:00:00Z"}, "run_at"),
    ],
)
def test_bad_debounce_input_is_422_with_fields(client, alice, settings, extra, field):
    body = {"type": "diagnostics.probe", "debounce_key": "k", "debounce_seconds": 5}
    body = {k: v for k, v in {**body, **extra}.items() if v is not None}
    resp = client.post("/api/jobs", json=body, headers=alice.headers)
    assert resp.status_code == 422, resp.get_json()
    assert field in resp.get_json()["error"]["fields"], resp.get_json()
    assert client.get("/api/jobs", headers=alice.headers).get_json()["jobs"] == []
