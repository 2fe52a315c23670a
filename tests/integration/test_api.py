"""Every status code of the jobs API (contract §3), through the Flask app with a real Redis broker."""

from __future__ import annotations

import redis

from questboard.testing import wait_for


def test_no_or_bad_token_is_401_json(client):
    for path in ("/api/jobs", "/api/job-types", "/api/jobs/abc", "/api/jobs/abc/events"):
        resp = client.get(path)
        assert resp.status_code == 401
        assert resp.get_json()["error"]["code"] == "unauthorized"
    resp = client.get("/api/jobs", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401


def test_submit_returns_202_and_puts_one_message_on_the_queue(client, alice, settings):
    resp = client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers)
    assert resp.status_code == 202
    job = resp.get_json()
    assert job["status"] == "queued" and job["type"] == "diagnostics.probe" and job["progress"] == 0
    for field in (
        "id",
        "message",
        "queue",
        "attempts",
        "max_attempts",
        "params",
        "result",
        "error",
        "created_at",
        "scheduled_at",
        "started_at",
        "finished_at",
    ):
        assert field in job
    assert redis.Redis.from_url(settings.redis_url).llen("default") == 1


def test_malformed_json_is_400(client, alice):
    resp = client.post(
        "/api/jobs", data="{not json", headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"]["message"]


def test_bad_params_and_unknown_types_are_422_with_fields(client, alice):
    resp = client.post(
        "/api/jobs", json={"type": "diagnostics.probe", "params": {"steps": 0}}, headers=alice.headers
    )
    assert resp.status_code == 422
    assert "params.steps" in resp.get_json()["error"]["fields"]
    resp = client.post("/api/jobs", json={"type": "nope"}, headers=alice.headers)
    assert resp.status_code == 422 and "type" in resp.get_json()["error"]["fields"]
    resp = client.post("/api/jobs", json={"params": {}}, headers=alice.headers)
    assert resp.status_code == 422 and "type" in resp.get_json()["error"]["fields"]
    resp = client.post(
        "/api/jobs", json={"type": "diagnostics.probe", "queue": "urgent"}, headers=alice.headers
    )
    assert resp.status_code == 422 and "queue" in resp.get_json()["error"]["fields"]
    resp = client.get("/api/jobs?limit=0", headers=alice.headers)
    assert resp.status_code == 422


def test_another_users_job_is_404(client, alice, bob):
    job_id = client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers).get_json()[
        "id"
    ]
    for method, path in (
        ("get", f"/api/jobs/{job_id}"),
        ("get", f"/api/jobs/{job_id}/events"),
        ("post", f"/api/jobs/{job_id}/cancel"),
    ):
        resp = getattr(client, method)(path, headers=bob.headers)
        assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    assert client.get(f"/api/jobs/{job_id}", headers=alice.headers).status_code == 200
    assert client.get("/api/jobs", headers=bob.headers).get_json()["jobs"] == []


def test_admins_see_every_job(client, alice, admin):
    job_id = client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers).get_json()[
        "id"
    ]
    assert client.get(f"/api/jobs/{job_id}", headers=admin.headers).status_code == 200


def test_cancel_queued_is_202_and_cancel_finished_is_409(client, alice):
    job_id = client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers).get_json()[
        "id"
    ]
    resp = client.post(f"/api/jobs/{job_id}/cancel", headers=alice.headers)
    assert resp.status_code == 202 and resp.get_json()["status"] == "canceled"
    resp = client.post(f"/api/jobs/{job_id}/cancel", headers=alice.headers)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "conflict"


def test_canceled_job_never_runs(client, alice, start_worker):
    job_id = client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers).get_json()[
        "id"
    ]
    client.post(f"/api/jobs/{job_id}/cancel", headers=alice.headers)
    start_worker()
    probe = client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers).get_json()[
        "id"
    ]
    wait_for(
        lambda: client.get(f"/api/jobs/{probe}", headers=alice.headers).get_json()["status"] == "succeeded",
        30,
    )
    job = client.get(f"/api/jobs/{job_id}", headers=alice.headers).get_json()
    assert job["status"] == "canceled" and job["attempts"] == 0 and job["started_at"] is None


def test_eleventh_active_job_is_429_with_retry_after(client, alice, settings):
    for _ in range(10):
        assert (
            client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers).status_code
            == 202
        )
    resp = client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers)
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert "limit" in resp.get_json()["error"]["message"]
    assert redis.Redis.from_url(settings.redis_url).llen("default") == 10  # nothing enqueued


def test_idempotency_key_gives_200_with_the_first_job(client, alice, settings):
    body = {"type": "diagnostics.probe", "idempotency_key": "order-42"}
    first = client.post("/api/jobs", json=body, headers=alice.headers)
    again = client.post("/api/jobs", json=body, headers=alice.headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    assert redis.Redis.from_url(settings.redis_url).llen("default") == 1


def test_delayed_job_is_scheduled(client, alice):
    resp = client.post(
        "/api/jobs", json={"type": "diagnostics.probe", "delay_seconds": 3600}, headers=alice.headers
    )
    job = resp.get_json()
    assert resp.status_code == 202 and job["status"] == "scheduled" and job["scheduled_at"]


def test_list_filters_and_pages(client, alice):
    ids = [
        client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers).get_json()["id"]
        for _ in range(3)
    ]
    client.post(f"/api/jobs/{ids[0]}/cancel", headers=alice.headers)
    page = client.get("/api/jobs?limit=2", headers=alice.headers).get_json()
    assert [j["id"] for j in page["jobs"]] == [ids[2], ids[1]] and page["next_cursor"]
    rest = client.get(f"/api/jobs?limit=2&cursor={page['next_cursor']}", headers=alice.headers).get_json()
    assert [j["id"] for j in rest["jobs"]] == [ids[0]] and rest["next_cursor"] is None
    canceled = client.get("/api/jobs?status=canceled", headers=alice.headers).get_json()["jobs"]
    assert [j["id"] for j in canceled] == [ids[0]]
    assert client.get("/api/jobs?status=bogus", headers=alice.headers).status_code == 422


def test_job_types_lists_schemas(client, alice):
    types = {t["type"]: t for t in client.get("/api/job-types", headers=alice.headers).get_json()}
    assert {"character.generate", "diagnostics.probe"} <= set(types)
    probe = types["diagnostics.probe"]
    assert probe["queue"] == "default" and probe["description"]
    assert probe["params_schema"]["properties"]["steps"]["maximum"] == 1000
    assert types["character.generate"]["params_schema"]["properties"]["level"]["maximum"] == 20


def test_openapi_is_served_without_auth(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.") and "/api/jobs" in spec["paths"]


def test_unknown_api_path_is_json_404(client, alice):
    resp = client.get("/api/nothing-here", headers=alice.headers)
    assert resp.status_code == 404 and resp.get_json()["error"]["code"]
