"""Isolation between users (contract §9): which types a user sees and may submit, which queues, how far
ahead, and the time limits every type declares (QUESTBOARD_TIME_LIMITS), through the real Flask app."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from questboard.app import job_types
from questboard.testing import wait_for, worker_process
from shared.settings import Settings
from shared.timelimits import TimeLimitsError

INTERNAL = {
    "login.mail",
    "mail.deliver",
    "webhook.process",
    "content.index",
    "cleanup.events",
    "cleanup.magic_links",
    "cleanup.retention",
    "cleanup.stale_jobs",
    "batch.summary",
}
USER_TYPES = {"character.generate", "diagnostics.probe", "report.export"}


def post_job(client, person, body: dict):
    return client.post("/api/jobs", json=body, headers=person.headers)


def test_a_normal_user_sees_and_submits_only_user_types(client, alice, admin):
    listed = client.get("/api/job-types", headers=alice.headers).get_json()
    assert {t["type"] for t in listed} == USER_TYPES
    assert all(t["internal"] is False for t in listed)

    def refusal(job_type: str) -> dict:
        resp = post_job(client, alice, {"type": job_type, "params": {"outbox_id": 1}})
        assert resp.status_code == 422, job_type
        body = resp.get_json()["error"]
        body["message"] = body["message"].replace(repr(job_type), "<type>")
        return body

    unknown = refusal("no.such.type")
    assert unknown == {
        "code": "invalid",
        "message": "Unknown job type <type>.",
        "fields": {"type": "unknown job type"},
    }
    for job_type in INTERNAL:
        assert refusal(job_type) == unknown  # exactly as for an unknown type: nothing reveals it
    assert client.get("/api/jobs", headers=alice.headers).get_json()["jobs"] == []

    everything = {t["type"]: t for t in client.get("/api/job-types", headers=admin.headers).get_json()}
    assert set(everything) == USER_TYPES | INTERNAL
    assert {name for name, t in everything.items() if t["internal"]} == INTERNAL
    resp = post_job(client, admin, {"type": "content.index", "params": {"character_id": "nope"}})
    assert resp.status_code == 202 and resp.get_json()["type"] == "content.index"

    spec = client.get("/api/openapi.json").get_json()
    submit = spec["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(submit["properties"]["type"]["enum"]) == USER_TYPES
    assert "403" in spec["paths"]["/api/jobs"]["post"]["responses"]


def test_a_queue_above_the_types_own_is_for_admins_only(client, alice, admin):
    for queue in ("critical", "high"):
        resp = post_job(client, alice, {"type": "diagnostics.probe", "queue": queue})
        assert resp.status_code == 403, queue
        error = resp.get_json()["error"]
        assert error["code"] == "forbidden" and "admins" in error["message"] and "queue" in error["fields"]
    # report.export lives on low: even default is above it.
    assert (
        post_job(
            client,
            alice,
            {"type": "report.export", "params": {"kind": "jobs", "format": "csv"}, "queue": "default"},
        ).status_code
        == 403
    )
    assert client.get("/api/jobs", headers=alice.headers).get_json()["jobs"] == []
    for queue in ("default", "low", None):
        resp = post_job(client, alice, {"type": "diagnostics.probe", **({"queue": queue} if queue else {})})
        assert resp.status_code == 202 and resp.get_json()["queue"] == (queue or "default")
    resp = post_job(client, admin, {"type": "diagnostics.probe", "queue": "critical"})
    assert resp.status_code == 202 and resp.get_json()["queue"] == "critical"


def test_delays_and_run_at_stop_at_366_days_and_absurd_values_are_422(client, alice):
    limit = 366 * 24 * 3600  # the contract's bound (shared.defaults.MAX_SCHEDULE_AHEAD_S)
    now = datetime.now(UTC)
    refused = {
        "delay just past": {"delay_seconds": limit + 1},
        "huge delay": {"delay_seconds": 1e308},
        "run_at 9999": {"run_at": "9999-01-01T00:00:00Z"},
        "run_at 367 days": {"run_at": (now + timedelta(days=367)).isoformat()},
        "run_at huge number": {"run_at": 10**30},
        "run_at year 99999": {"run_at": "99999-01-01T00:00:00Z"},
        "run_at before year 1 in UTC": {"run_at": "0001-01-01T00:00:00+14:00"},
    }
    for case, extra in refused.items():
        resp = post_job(client, alice, {"type": "diagnostics.probe", **extra})
        assert resp.status_code == 422, (case, resp.status_code, resp.get_data(as_text=True)[:300])
        assert set(resp.get_json()["error"]["fields"]) & {"delay_seconds", "run_at"}, case
    ok_delay = post_job(client, alice, {"type": "diagnostics.probe", "delay_seconds": limit})
    ok_run_at = post_job(
        client, alice, {"type": "diagnostics.probe", "run_at": (now + timedelta(days=365)).isoformat()}
    )
    assert ok_delay.status_code == ok_run_at.status_code == 202
    assert ok_delay.get_json()["status"] == ok_run_at.get_json()["status"] == "scheduled"


def test_every_type_has_a_time_limit_and_the_installation_can_override_it(app, client, admin, settings):
    listed = {t["type"]: t for t in client.get("/api/job-types", headers=admin.headers).get_json()}
    limits = {name: t["time_limit_seconds"] for name, t in listed.items()}
    assert all(isinstance(v, int) and 1 <= v <= 3600 for v in limits.values()), limits
    assert limits["diagnostics.probe"] == 600 and limits["mail.deliver"] == 60
    docs = (Path(__file__).parents[2] / "docs" / "jobs.md").read_text()
    assert "time limit: 600 s per attempt" in docs

    from web import create_app

    custom = create_app(settings.model_copy(update={"time_limits": "diagnostics.probe:7, report.export:900"}))
    types = {
        t["type"]: t for t in custom.test_client().get("/api/job-types", headers=admin.headers).get_json()
    }
    assert types["diagnostics.probe"]["time_limit_seconds"] == 7
    assert types["report.export"]["time_limit_seconds"] == 900
    assert types["character.generate"]["time_limit_seconds"] == limits["character.generate"]


@pytest.mark.parametrize(
    "value", ["diagnostics.probe", "diagnostics.probe:0", "diagnostics.probe:ten", ":5", "a:1,a:2"]
)
def test_a_malformed_time_limits_setting_is_refused_with_its_name(monkeypatch, value):
    monkeypatch.setenv("QUESTBOARD_TIME_LIMITS", value)
    with pytest.raises(ValidationError, match="QUESTBOARD_TIME_LIMITS"):
        Settings()


def test_an_unknown_type_in_time_limits_stops_start_up(env, tmp_path):
    with pytest.raises(TimeLimitsError, match="unknown job types: no.such"):
        job_types(None, "no.such:5")
    bad = {**env, "QUESTBOARD_TIME_LIMITS": "no.such:5"}
    exe = str(Path(sys.executable).parent / "questboard")
    cli = subprocess.run([exe, "jobs", "types"], capture_output=True, text=True, timeout=60, env=bad)
    assert cli.returncode != 0 and "QUESTBOARD_TIME_LIMITS names unknown job types: no.such" in cli.stderr

    proc = worker_process({**bad, "PATH": os.environ["PATH"]}, tmp_path)
    proc.start()
    try:
        wait_for(lambda: not proc.alive(), 30, what="the worker to refuse to start")
        assert "QUESTBOARD_TIME_LIMITS names unknown job types: no.such" in proc.output()
    finally:
        proc.stop(timeout_s=5)
