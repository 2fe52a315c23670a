"""Shared pieces of the workflow tests: settings that load the test job types, and waiting for a
workflow to finish."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from questboard.testing import wait_for

JOB_MODULES = "tests.integration.workflows.jobtypes"
FINAL = ("succeeded", "failed", "canceled")
# Long enough for retries (probe: 3 attempts, backoff up to 1 s) and a sweep on a busy 2-core machine.
DEADLINE_S = 60.0


def probe(key: str, after: list[str] | None = None, **params: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"key": key, "type": "diagnostics.probe", "params": params}
    if after:
        step["after"] = after
    return step


def finished_workflow(client: Any, headers: dict[str, str], workflow_id: str) -> dict[str, Any]:
    """The workflow once it is final (and every step with it), within DEADLINE_S."""

    def done() -> dict[str, Any] | None:
        wf = client.get(f"/api/workflows/{workflow_id}", headers=headers).get_json()
        if wf["status"] in FINAL and all(s["status"] in FINAL for s in wf["steps"]):
            return wf
        return None

    return wait_for(done, DEADLINE_S, 0.1, what=f"workflow {workflow_id} to finish")


def jobs_by_key(client: Any, headers: dict[str, str], workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        s["key"]: client.get(f"/api/jobs/{s['job_id']}", headers=headers).get_json()
        for s in workflow["steps"]
    }


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def ran_after(later: dict[str, Any], earlier: dict[str, Any]) -> bool:
    """``later`` started only once ``earlier`` had finished (from the jobs' own times)."""
    return at(later["started_at"]) >= at(earlier["finished_at"])
