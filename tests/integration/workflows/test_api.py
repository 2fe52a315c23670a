"""Workflows (contract §8) through the API with real Celery workers on SQLite: validation, the order
steps run in (read from their own started_at/finished_at), failure rules, cancel, who may see one, the
per-user limit and ``ctx.add_steps``."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from questboard.testing import wait_for
from shared.db import get_sessionmaker
from shared.models import Job, Workflow
from tests.integration.helpers_app import log_in
from tests.integration.workflows.support import (
    finished_workflow,
    jobs_by_key,
    probe,
    ran_after,
)


def counts(db_url: str) -> tuple[int, int]:
    with get_sessionmaker(db_url)() as session:
        return (
            session.scalar(select(func.count()).select_from(Job)) or 0,
            session.scalar(select(func.count()).select_from(Workflow)) or 0,
        )


INVALID = {
    "unknown type": ([{"key": "a", "type": "no.such"}], "steps.0.type"),
    "internal type": ([{"key": "a", "type": "mail.deliver", "params": {"outbox_id": 1}}], "steps.0.type"),
    "unknown after": ([probe("a"), probe("b", ["nope"])], "steps.1.after"),
    "duplicate key": ([probe("a"), probe("a")], "steps.1.key"),
    "cycle": ([probe("a", ["c"]), probe("b", ["a"]), probe("c", ["b"])], "steps.0.after"),
    "self": ([probe("a", ["a"])], "steps.0.after"),
    "invalid params": ([probe("a", steps=0)], "steps.0.params.steps"),
    "bad on_failure": ([{**probe("a"), "on_failure": "shrug"}], "steps.0.on_failure"),
    "no steps": ([], "steps"),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_an_invalid_workflow_is_422_naming_the_field_and_creates_nothing(client, alice, db_url, case):
    steps, field = INVALID[case]
    resp = client.post("/api/workflows", json={"steps": steps}, headers=alice.headers)
    assert resp.status_code == 422, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == "invalid" and field in error["fields"], error
    assert counts(db_url) == (0, 0)


def test_a_later_step_with_an_error_creates_none_of_the_earlier_ones(client, alice, db_url):
    steps = [probe("a"), probe("b", ["a"]), {"key": "c", "type": "no.such", "after": ["b"]}]
    assert client.post("/api/workflows", json={"steps": steps}, headers=alice.headers).status_code == 422
    assert counts(db_url) == (0, 0)


def test_malformed_json_is_400_and_no_token_is_401(client, alice):
    headers = {**alice.headers, "Content-Type": "application/json"}
    assert client.post("/api/workflows", data="{nope", headers=headers).status_code == 400
    assert client.post("/api/workflows", json={"steps": [probe("a")]}).status_code == 401


def test_a_diamond_runs_in_dependency_order_and_succeeds(client, alice, worker):
    steps = [
        probe("fetch", steps=2, step_ms=100),
        probe("left", ["fetch"], steps=2, step_ms=100),
        probe("right", ["fetch"]),
        probe("join", ["left", "right"]),
    ]
    resp = client.post("/api/workflows", json={"name": "diamond", "steps": steps}, headers=alice.headers)
    assert resp.status_code == 202
    created = resp.get_json()
    assert created["name"] == "diamond" and created["status"] == "running" and created["finished_at"] is None
    assert [(s["key"], s["status"], s["after"]) for s in created["steps"]][:2] == [
        ("fetch", "queued", []),
        ("left", "blocked", ["fetch"]),
    ]
    wf = finished_workflow(client, alice.headers, created["id"])
    assert wf["status"] == "succeeded" and wf["finished_at"]
    jobs = jobs_by_key(client, alice.headers, wf)
    assert all(j["workflow_id"] == wf["id"] and j["parent_id"] is None for j in jobs.values())
    assert ran_after(jobs["left"], jobs["fetch"]) and ran_after(jobs["right"], jobs["fetch"])
    assert ran_after(jobs["join"], jobs["left"]) and ran_after(jobs["join"], jobs["right"])


def test_a_failed_step_cancels_its_dependents_and_the_workflow_fails(client, alice, worker):
    steps = [probe("a", fail_always=True), probe("b", ["a"]), probe("c", ["b"]), probe("free")]
    created = client.post("/api/workflows", json={"steps": steps}, headers=alice.headers).get_json()
    wf = finished_workflow(client, alice.headers, created["id"])
    status = {s["key"]: s["status"] for s in wf["steps"]}
    assert status == {"a": "failed", "b": "canceled", "c": "canceled", "free": "succeeded"}
    assert wf["status"] == "failed"
    jobs = jobs_by_key(client, alice.headers, wf)
    assert jobs["a"]["attempts"] == jobs["a"]["max_attempts"]  # it exhausted its attempts
    assert jobs["b"]["started_at"] is None and jobs["c"]["started_at"] is None


def test_continue_lets_dependents_start_after_a_failure(client, alice, worker):
    steps = [{**probe("a", fail_always=True), "on_failure": "continue"}, probe("b", ["a"])]
    created = client.post("/api/workflows", json={"steps": steps}, headers=alice.headers).get_json()
    wf = finished_workflow(client, alice.headers, created["id"])
    assert {s["key"]: s["status"] for s in wf["steps"]} == {"a": "failed", "b": "succeeded"}
    assert wf["status"] == "failed"  # a step failed, and nothing is left to run
    jobs = jobs_by_key(client, alice.headers, wf)
    assert ran_after(jobs["b"], jobs["a"])


def test_cancel_is_202_then_409_and_every_step_ends(client, alice, worker):
    steps = [probe("long", steps=600, step_ms=100), probe("next", ["long"]), probe("other")]
    created = client.post("/api/workflows", json={"steps": steps}, headers=alice.headers).get_json()
    long_id = created["steps"][0]["job_id"]
    wait_for(
        lambda: client.get(f"/api/jobs/{long_id}", headers=alice.headers).get_json()["status"] == "running",
        30,
        what="the long step to run",
    )
    resp = client.post(f"/api/workflows/{created['id']}/cancel", headers=alice.headers)
    assert resp.status_code == 202
    wf = finished_workflow(client, alice.headers, created["id"])
    assert wf["status"] == "canceled"
    status = {s["key"]: s["status"] for s in wf["steps"]}
    assert status["long"] == "canceled" and status["next"] == "canceled"
    again = client.post(f"/api/workflows/{created['id']}/cancel", headers=alice.headers)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"


def test_another_users_workflow_is_404_and_admins_see_it(client, alice, bob, admin):
    created = client.post("/api/workflows", json={"steps": [probe("a")]}, headers=alice.headers).get_json()
    for resp in (
        client.get(f"/api/workflows/{created['id']}", headers=bob.headers),
        client.post(f"/api/workflows/{created['id']}/cancel", headers=bob.headers),
        client.get("/api/workflows/nope", headers=alice.headers),
    ):
        assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    assert client.get(f"/api/workflows/{created['id']}", headers=admin.headers).status_code == 200
    assert client.get(f"/api/jobs/{created['steps'][0]['job_id']}", headers=bob.headers).status_code == 404


def test_the_limit_counts_steps_that_are_not_blocked(client, alice, db_url):
    # No worker: nothing finishes. One root and 14 waiting steps count as one active job.
    steps = [probe("root")] + [probe(f"s{i}", ["root"]) for i in range(14)]
    assert client.post("/api/workflows", json={"steps": steps}, headers=alice.headers).status_code == 202
    for _ in range(9):
        assert (
            client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers).status_code
            == 202
        )
    over = client.post("/api/jobs", json={"type": "diagnostics.probe"}, headers=alice.headers)
    assert over.status_code == 429 and over.headers["Retry-After"]
    before = counts(db_url)
    over = client.post("/api/workflows", json={"steps": [probe("x")]}, headers=alice.headers)
    assert over.status_code == 429 and counts(db_url) == before


def test_a_workflow_starting_more_than_the_limit_is_429_and_creates_nothing(client, alice, db_url):
    steps = [probe(f"r{i}") for i in range(11)]
    resp = client.post("/api/workflows", json={"steps": steps}, headers=alice.headers)
    assert resp.status_code == 429 and counts(db_url) == (0, 0)


def test_a_step_adds_steps_and_the_workflow_waits_for_them(client, alice, worker):
    steps = [{"key": "grow", "type": "test.grow", "params": {"children": 2, "child_ms": 300}}]
    created = client.post("/api/workflows", json={"steps": steps}, headers=alice.headers).get_json()
    wf = finished_workflow(client, alice.headers, created["id"])
    assert [s["key"] for s in wf["steps"]] == ["grow", "child-0", "child-1", "summary"]
    assert wf["status"] == "succeeded"
    jobs = jobs_by_key(client, alice.headers, wf)
    assert jobs["grow"]["result"] == {"added": ["child-0", "child-1", "summary"]}
    assert ran_after(jobs["summary"], jobs["child-0"]) and ran_after(jobs["summary"], jobs["child-1"])
    ends = [jobs[k]["finished_at"] for k in jobs]
    assert wf["finished_at"] >= max(ends)  # ISO 8601 UTC strings of one format compare in time order


def test_the_workflow_page_lays_steps_out_by_level_and_the_job_page_links_it(
    client, accounts, alice, bob, admin
):
    steps = [
        probe("fetch"),
        probe("left", ["fetch"]),
        probe("right", ["fetch"]),
        probe("join", ["left", "right"]),
    ]
    wf = client.post(
        "/api/workflows", json={"name": "Nightly", "steps": steps}, headers=alice.headers
    ).get_json()
    log_in(client, accounts, alice)
    page = client.get(f"/workflows/{wf['id']}").get_data(as_text=True)
    levels = re.findall(r'<li class="wf-level">(.*?)</ul>', page, re.S)
    keys = [re.findall(r'data-key="([^"]+)"', level) for level in levels]
    assert keys == [["fetch"], ["left", "right"], ["join"]]
    assert "after left, right" in page and "Nightly" in page
    job_page = client.get(f"/jobs/{wf['steps'][3]['job_id']}").get_data(as_text=True)
    assert f'href="/workflows/{wf["id"]}" data-role="workflow"' in job_page
    state = client.get(f"/workflows/{wf['id']}/state").get_json()
    assert state["id"] == wf["id"] and [s["key"] for s in state["steps"]] == [
        "fetch",
        "left",
        "right",
        "join",
    ]
    log_in(client, accounts, bob)
    assert client.get(f"/workflows/{wf['id']}").status_code == 404
    assert client.get(f"/workflows/{wf['id']}/state").status_code == 404
    log_in(client, accounts, admin)
    assert client.get(f"/workflows/{wf['id']}").status_code == 200
