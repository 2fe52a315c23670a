"""Migration 0012_workflows and the workflow service's writes on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect

from questboard.app import registry
from shared.accounts import Accounts
from shared.db import alembic_config, get_engine
from shared.errors import InvalidRequest, LimitReached
from shared.jobs import JobService
from shared.publisher import NullPublisher
from shared.workflows import WorkflowSpec
from shared.workflows.service import Workflows
from tests.unit.test_job_service import RecordingDispatcher

REVISION = "0012_workflows"


def test_upgrade_and_downgrade(database_url):
    engine = get_engine(database_url)
    command.downgrade(alembic_config(database_url), "0011_job_browser_indexes")
    engine.dispose()
    assert "workflows" not in inspect(engine).get_table_names()
    assert "workflow_id" not in {c["name"] for c in inspect(engine).get_columns("jobs")}
    command.upgrade(alembic_config(database_url), REVISION)
    engine.dispose()
    assert {"workflows", "workflow_steps"} <= set(inspect(engine).get_table_names())
    assert "workflow_id" in {c["name"] for c in inspect(engine).get_columns("jobs")}
    assert {"uq_workflow_steps_workflow_key"} <= {
        u["name"] for u in inspect(engine).get_unique_constraints("workflow_steps")
    }


@pytest.fixture
def service(database_url):
    dispatcher = RecordingDispatcher()
    jobs = JobService(database_url, registry(), NullPublisher(), dispatcher, user_job_limit=3)
    workflows = Workflows(database_url, jobs)
    jobs.machine.after_final(workflows.settler.settle)  # as the composition root wires it
    return workflows, dispatcher, Accounts(database_url).ensure_user("w@example.com")


def spec(steps):
    return WorkflowSpec.model_validate({"steps": steps})


def test_create_sends_only_the_roots_and_settling_releases_the_rest(service):
    workflows, dispatcher, user = service
    wf = workflows.create(
        user,
        spec(
            [{"key": "a", "type": "diagnostics.probe"}]
            + [{"key": f"b{i}", "type": "diagnostics.probe", "after": ["a"]} for i in range(5)]
        ),
    )
    assert [s["status"] for s in wf["steps"]] == ["queued"] + ["blocked"] * 5
    assert [job_id for job_id, _, _ in dispatcher.sent] == [wf["steps"][0]["job_id"]]
    assert workflows.jobs.active_count(user) == 1  # blocked steps do not count
    with pytest.raises(LimitReached):  # 1 active + 3 roots > 3
        workflows.create(user, spec([{"key": f"r{i}", "type": "diagnostics.probe"} for i in range(3)]))
    with pytest.raises(InvalidRequest) as caught:
        workflows.create(user, spec([{"key": "a", "type": "diagnostics.probe", "params": {"steps": 0}}]))
    assert "steps.0.params.steps" in (caught.value.fields or {})
    workflows.jobs.cancel(user, wf["steps"][0]["job_id"])  # the hook settles: dependents canceled
    after = workflows.get(user, wf["id"])
    assert after["status"] == "canceled" and {s["status"] for s in after["steps"]} == {"canceled"}


def test_the_sweep_settles_what_no_hook_saw_walking_on_batch_by_batch(service, database_url):
    from shared.jobstate import Machine

    workflows, dispatcher, user = service
    bare = Machine(database_url, NullPublisher(), dispatcher)  # no after-final hook
    made = []
    for _ in range(3):
        wf = workflows.create(
            user,
            spec(
                [
                    {"key": "a", "type": "diagnostics.probe"},
                    {"key": "b", "type": "diagnostics.probe", "after": ["a"]},
                ]
            ),
        )
        bare.stop(wf["steps"][0]["job_id"], "Canceled")  # no workflow hook here
        made.append(wf["id"])
    assert {workflows.get(user, w)["status"] for w in made} == {"running"}
    assert workflows.settler.sweep(batch=2) == 2
    assert workflows.settler.sweep(batch=2) == 1  # the next sweep goes on from where the last stopped
    for wf_id in made:
        wf = workflows.get(user, wf_id)
        assert wf["status"] == "canceled" and [s["status"] for s in wf["steps"]] == ["canceled", "canceled"]


def test_a_step_cannot_add_past_the_waiting_cap_or_the_workflow_size(database_url, monkeypatch):
    """``ctx.add_steps`` is not refused by the active-job limit, but it cannot grow a user's waiting jobs
    past QUESTBOARD_USER_QUEUED_LIMIT nor a workflow past WORKFLOW_MAX_STEPS (a loop of adds would)."""
    from shared import defaults
    from shared.errors import PermanentError
    from shared.models import Job, utcnow

    jobs = JobService(database_url, registry(), NullPublisher(), RecordingDispatcher(), user_queued_limit=4)
    workflows = Workflows(database_url, jobs)
    user = Accounts(database_url).ensure_user("adds@example.com")
    wf = workflows.create(user, spec([{"key": "root", "type": "diagnostics.probe"}]))
    root = wf["steps"][0]["job_id"]
    assert jobs.machine.claim(root, "w@host", 1, utcnow()) is not None  # the root is running

    def probes(prefix: str, n: int) -> list[dict]:
        return [{"key": f"{prefix}{i}", "type": "diagnostics.probe", "after": ["root"]} for i in range(n)]

    assert len(workflows.add_steps(root, probes("a", 3))) == 3  # 3 waiting of 4
    with pytest.raises(PermanentError, match="waiting jobs per user"):
        workflows.add_steps(root, probes("b", 2))
    monkeypatch.setattr(defaults, "WORKFLOW_MAX_STEPS", 5)
    with pytest.raises(PermanentError, match="at most 5 steps"):
        workflows.add_steps(root, probes("c", 2))  # 4 steps + 2 > 5
    with jobs._sessions() as session:
        assert session.query(Job).filter(Job.workflow_id == wf["id"]).count() == 4  # nothing half-added
