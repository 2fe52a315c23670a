"""The job browser API (contract §3): attempts, parent_id, GET /api/admin/jobs and its bulk actions, for every
role, on SQLite and PostgreSQL, with real jobs in a real Redis broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.models import AuditEntry
from tests.integration.test_admin_support import PROBE, Viewer, run_and_fail, run_and_succeed, submit

CHARACTER = {"name": "Mira", "race": "Elf", "char_class": "Wizard", "level": 3}


@pytest.fixture
def db_url(database_url: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL."""
    return database_url


@pytest.fixture
def viewer(accounts, settings) -> Viewer:
    return Viewer(accounts, settings)


def _audit(settings) -> list[AuditEntry]:
    from sqlalchemy import select

    from shared.db import get_sessionmaker

    with get_sessionmaker(settings.resolved_database_url)() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def _status(client, admin, job_id: str) -> str:
    return client.get(f"/api/jobs/{job_id}", headers=admin.headers).get_json()["status"]


def _scheduled(client, person, **params) -> str:
    body = {"type": PROBE, "params": params, "delay_seconds": 3600}
    resp = client.post("/api/jobs", json=body, headers=person.headers)
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()["id"]


# ----- attempts ------------------------------------------------------------------------------------


def test_attempts_list_every_run_with_its_error_for_owner_and_operators(
    client, alice, bob, viewer, admin, settings
):
    job_id = submit(client, alice)
    run_and_fail(settings, job_id, "the dragon ate it")
    ok_id = submit(client, alice)
    run_and_succeed(settings, ok_id)

    resp = client.get(f"/api/jobs/{job_id}/attempts", headers=alice.headers)
    assert resp.status_code == 200
    (attempt,) = resp.get_json()
    assert set(attempt) == {"number", "status", "worker", "started_at", "finished_at", "duration_ms", "error"}
    assert attempt["number"] == 1 and attempt["status"] == "failed"
    assert attempt["worker"] == "test-worker@host"
    assert attempt["started_at"].endswith("Z") and attempt["finished_at"].endswith("Z")
    assert isinstance(attempt["duration_ms"], int) and attempt["duration_ms"] >= 0
    assert attempt["error"]["type"] == "PermanentError"
    assert attempt["error"]["message"] == "the dragon ate it"
    assert "Traceback" in attempt["error"]["traceback"]

    (good,) = client.get(f"/api/jobs/{ok_id}/attempts", headers=alice.headers).get_json()
    assert good["status"] == "succeeded" and good["error"] is None

    for person in (viewer, admin):
        assert client.get(f"/api/jobs/{job_id}/attempts", headers=person.headers).get_json() == [attempt]
    assert client.get(f"/api/jobs/{job_id}/attempts", headers=bob.headers).status_code == 404
    assert client.get(f"/api/jobs/{job_id}/attempts").status_code == 401
    missing = client.get("/api/jobs/" + "0" * 32 + "/attempts", headers=admin.headers)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    fresh = submit(client, alice)
    assert client.get(f"/api/jobs/{fresh}/attempts", headers=alice.headers).get_json() == []


def test_job_object_carries_parent_id(client, app, alice):
    parent = submit(client, alice)
    assert client.get(f"/api/jobs/{parent}", headers=alice.headers).get_json()["parent_id"] is None
    from web.services import services

    with app.app_context():
        child, _ = services().jobs.submit(alice.user, PROBE, {}, parent_id=parent)
    assert child["parent_id"] == parent
    assert client.get(f"/api/jobs/{child['id']}", headers=alice.headers).get_json()["parent_id"] == parent


# ----- the browser ---------------------------------------------------------------------------------


def test_admin_jobs_lists_every_users_jobs_with_the_owner(client, alice, bob, viewer, admin):
    a = submit(client, alice)
    b = submit(client, bob, queue="low")

    for person in (viewer, admin):
        resp = client.get("/api/admin/jobs", headers=person.headers)
        assert resp.status_code == 200
        body = resp.get_json()
        assert [(j["id"], j["user"]) for j in body["jobs"]] == [
            (b, "bob@example.com"),
            (a, "alice@example.com"),
        ]
        assert body["next_cursor"] is None
    assert client.get("/api/admin/jobs", headers=alice.headers).status_code == 403
    assert client.get("/api/admin/jobs").status_code == 401


def test_admin_jobs_filters(client, alice, bob, admin, settings):
    queued = submit(client, alice, steps=2)
    low = submit(client, bob, queue="low")
    failed = submit(client, bob)
    run_and_fail(settings, failed, "needle in the haystack")
    resp = client.post(
        "/api/jobs", json={"type": "character.generate", "params": CHARACTER}, headers=bob.headers
    )
    character = resp.get_json()["id"]

    def ids(**query) -> list[str]:
        resp = client.get("/api/admin/jobs", query_string=query, headers=admin.headers)
        assert resp.status_code == 200, resp.get_json()
        return [j["id"] for j in resp.get_json()["jobs"]]

    assert ids(status="failed") == [failed]
    assert set(ids(status="queued,failed")) == {queued, low, failed, character}
    assert ids(type="character.generate") == [character]
    assert set(ids(type="character.generate,diagnostics.probe")) == {queued, low, failed, character}
    assert ids(queue="low") == [low]
    assert ids(user="alice@example.com") == [queued]
    assert ids(user="ALICE@example.com") == [queued]
    assert ids(user="nobody@example.com") == []
    assert ids(q="haystack") == [failed]  # the error's message
    assert ids(q="mira") == [character]  # the params
    assert ids(status="failed", user="alice@example.com") == []
    now = datetime.now(UTC)
    assert len(ids(since=(now - timedelta(minutes=5)).isoformat())) == 4
    assert ids(until=(now - timedelta(minutes=5)).isoformat()) == []
    assert ids(since=(now + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")) == []

    first = client.get("/api/admin/jobs?limit=3", headers=admin.headers).get_json()
    assert len(first["jobs"]) == 3 and first["next_cursor"]
    rest = client.get(f"/api/admin/jobs?limit=3&cursor={first['next_cursor']}", headers=admin.headers)
    assert [j["id"] for j in rest.get_json()["jobs"]] == [queued]
    assert rest.get_json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=nope", "status.0"),
        ("status=queued,nope", "status.1"),
        ("queue=urgent", "queue"),
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
        ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "__root__"),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("cursor=garbage", "cursor"),
        ("user=" + "x" * 400, "user"),
    ],
)
def test_admin_jobs_bad_values_are_422_with_fields(client, admin, query, field):
    resp = client.get(f"/api/admin/jobs?{query}", headers=admin.headers)
    assert resp.status_code == 422, resp.get_json()
    assert field in resp.get_json()["error"]["fields"]


# ----- bulk actions --------------------------------------------------------------------------------


def test_bulk_cancel_by_filter_cancels_every_matching_unfinished_job_once_audited(
    client, alice, bob, admin, settings
):
    mine = [_scheduled(client, alice) for _ in range(3)]
    theirs = _scheduled(client, bob)
    queued = submit(client, alice)
    done = submit(client, alice)
    run_and_succeed(settings, done)
    before = len(_audit(settings))

    selection = {"filter": {"status": ["scheduled"], "user": "alice@example.com"}}
    resp = client.post("/api/admin/jobs/cancel", json=selection, headers=admin.headers)

    assert resp.status_code == 200 and resp.get_json() == {"count": 3}
    assert [_status(client, admin, j) for j in mine] == ["canceled"] * 3
    assert _status(client, admin, theirs) == "scheduled"
    assert _status(client, admin, queued) == "queued"
    entries = _audit(settings)[before:]
    assert len(entries) == 1
    assert entries[0].actor == "ops@example.com" and entries[0].action == "jobs.cancel"
    assert entries[0].details == {
        "filter": {"status": ["scheduled"], "user": "alice@example.com"},
        "count": 3,
    }

    # By ids: finished jobs are left alone and not counted.
    resp = client.post("/api/admin/jobs/cancel", json={"ids": [queued, done, mine[0]]}, headers=admin.headers)
    assert resp.get_json() == {"count": 1}
    assert _status(client, admin, queued) == "canceled" and _status(client, admin, done) == "succeeded"


def test_bulk_retry_and_discard_touch_failed_jobs_only(client, alice, admin, settings):
    failed = [submit(client, alice) for _ in range(3)]
    for job_id in failed:
        run_and_fail(settings, job_id)
    queued = submit(client, alice)

    resp = client.post("/api/admin/jobs/retry", json={"ids": [failed[0], queued]}, headers=admin.headers)
    assert resp.status_code == 200 and resp.get_json() == {"count": 1}
    assert _status(client, admin, failed[0]) == "queued" and _status(client, admin, queued) == "queued"

    resp = client.post("/api/admin/jobs/discard", json={"filter": {"type": [PROBE]}}, headers=admin.headers)
    assert resp.get_json() == {"count": 2}
    dead = client.get("/api/admin/failed", headers=admin.headers).get_json()
    assert dead == []
    again = client.post(
        "/api/admin/jobs/discard", json={"filter": {"status": "failed"}}, headers=admin.headers
    )
    assert again.get_json() == {"count": 0}  # discarded ones are out of the dead-letter set
    actions = [e.action for e in _audit(settings)]
    assert actions[-3:] == ["jobs.retry", "jobs.discard", "jobs.discard"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",
        b'{"filter": {}}',
        b'{"ids": []}',
        b'{"ids": ["a"], "filter": {"queue": "low"}}',
        b'{"filter": {"status": ["nope"]}}',
        b'{"ids": "abc"}',
        b"[1]",
        b'{"what": 1}',
    ],
)
def test_bulk_selection_must_select_something(client, admin, body):
    resp = client.post(
        "/api/admin/jobs/cancel", data=body, content_type="application/json", headers=admin.headers
    )
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] == "invalid" and resp.get_json()["error"]["fields"]


def test_bulk_actions_are_for_admins_only(client, alice, viewer, admin, settings):
    job_id = _scheduled(client, alice)
    body = {"ids": [job_id]}
    for action in ("cancel", "retry", "discard"):
        path = f"/api/admin/jobs/{action}"
        assert client.post(path, json=body).status_code == 401
        assert client.post(path, json=body, headers=alice.headers).status_code == 403
        refused = client.post(path, json=body, headers=viewer.headers)
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    assert _status(client, admin, job_id) == "scheduled"
    bad = client.post(
        "/api/admin/jobs/cancel", data=b"{nope", content_type="application/json", headers=admin.headers
    )
    assert bad.status_code == 400
    assert not [e for e in _audit(settings) if e.action.startswith("jobs.")]
