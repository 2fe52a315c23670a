"""The workflow rules (``shared.workflows.settle.decide``) and graph checks, without a database."""

from __future__ import annotations

from shared.workflows.plan import StepSpec, cycle_members, graph_errors, levels
from shared.workflows.settle import StepState, decide


def step(key, status, after=(), on_failure="cancel_dependents", pending=None):
    waiting = status == "blocked" if pending is None else pending
    return StepState(f"id-{key}", key, list(after), on_failure, status, waiting)


def test_a_step_is_released_once_every_dependency_succeeded():
    d = decide([step("a", "succeeded"), step("b", "running"), step("c", "blocked", ["a", "b"])])
    assert not d and d.final_status is None
    d = decide([step("a", "succeeded"), step("b", "succeeded"), step("c", "blocked", ["a", "b"])])
    assert d.release == ["id-c"] and d.cancel == [] and d.final_status is None


def test_cancel_dependents_cascades_at_once_and_the_workflow_fails():
    d = decide([step("a", "failed"), step("b", "blocked", ["a"]), step("c", "blocked", ["b"])])
    assert [job for job, _ in d.cancel] == ["id-b", "id-c"]
    assert d.final_status == "failed"


def test_a_failure_cancels_a_dependent_even_while_its_other_dependency_runs():
    d = decide([step("a", "failed"), step("x", "running"), step("b", "blocked", ["a", "x"])])
    assert [job for job, _ in d.cancel] == ["id-b"] and d.final_status is None


def test_continue_releases_the_dependent():
    d = decide([step("a", "canceled", on_failure="continue"), step("b", "blocked", ["a"])])
    assert d.release == ["id-b"] and d.cancel == []


def test_final_statuses():
    assert decide([step("a", "succeeded"), step("b", "succeeded")]).final_status == "succeeded"
    assert decide([step("a", "canceled"), step("b", "succeeded")]).final_status == "canceled"
    assert decide([step("a", "canceled"), step("b", "failed")]).final_status == "failed"
    assert decide([step("a", "blocked", pending=False)]).final_status is None  # a slot, not a dependency


def test_graph_checks_name_each_step():
    steps = [StepSpec(key="a", type="t", after=["c"]), StepSpec(key="b", type="t", after=["a"])]
    steps.append(StepSpec(key="c", type="t", after=["b"]))
    assert cycle_members(steps) == [0, 1, 2]
    assert set(graph_errors(steps)) == {"steps.0.after", "steps.1.after", "steps.2.after"}
    assert graph_errors([StepSpec(key="x", type="t", after=["old"])], existing=["old"]) == {}
    assert graph_errors([StepSpec(key="old", type="t")], existing=["old"]) == {
        "steps.0.key": "duplicate key 'old'"
    }
    assert levels({"a": [], "b": ["a"], "c": ["a", "b"], "d": []}) == {"a": 0, "b": 1, "c": 2, "d": 0}
