"""The workflow rules with real workers on PostgreSQL (row locks instead of SQLite's one write lock): a
diamond runs in order, a failure cancels what follows it, and a step adds steps."""

from __future__ import annotations

import pytest

from tests.integration.workflows.support import finished_workflow, jobs_by_key, probe, ran_after

pytestmark = pytest.mark.postgres


@pytest.fixture
def db_url(postgres_url: str) -> str:
    return postgres_url


def test_the_rules_hold_on_postgresql(client, alice, start_worker):
    start_worker(concurrency=2)
    diamond = [probe("a"), probe("b", ["a"]), probe("c", ["a"]), probe("d", ["b", "c"])]
    failing = [probe("x", fail_always=True), probe("y", ["x"]), probe("z")]
    grow = [{"key": "grow", "type": "test.grow", "params": {"children": 2, "child_ms": 100}}]
    ids = [
        client.post("/api/workflows", json={"steps": steps}, headers=alice.headers).get_json()["id"]
        for steps in (diamond, failing, grow)
    ]
    first, second, third = (finished_workflow(client, alice.headers, i) for i in ids)
    jobs = jobs_by_key(client, alice.headers, first)
    assert (
        first["status"] == "succeeded" and ran_after(jobs["d"], jobs["b"]) and ran_after(jobs["d"], jobs["c"])
    )
    assert second["status"] == "failed"
    assert [s["status"] for s in second["steps"]] == ["failed", "canceled", "succeeded"]
    assert third["status"] == "succeeded" and len(third["steps"]) == 4
