"""Every workflow reaches a final state, whatever happens to its steps (contract §8), within a deadline:
a killed worker, a canceled step, a step that exhausts its attempts, a failed step discarded from the
dead-letter set, and a dependency canceled through a path with no workflow hook (a Celery revoke: only
the maintenance sweep settles it)."""

from __future__ import annotations

from questboard.testing import wait_for
from tests.integration.workflows.support import finished_workflow, probe

LONG = {"steps": 600, "step_ms": 100}  # a minute of work: it is stopped or outlived, never awaited


def submit(client, person, steps):
    resp = client.post("/api/workflows", json={"steps": steps}, headers=person.headers)
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()


def status_of(client, person, job_id):
    return client.get(f"/api/jobs/{job_id}", headers=person.headers).get_json()["status"]


def wait_status(client, person, job_id, status, timeout_s=30.0):
    wait_for(lambda: status_of(client, person, job_id) == status, timeout_s, 0.1, what=f"{job_id} {status}")


def test_a_worker_killed_mid_workflow(client, alice, start_worker):
    first = start_worker(concurrency=1)
    wf = submit(client, alice, [probe("work", steps=30, step_ms=100), probe("after", ["work"])])
    work = wf["steps"][0]["job_id"]
    wait_status(client, alice, work, "running")
    first.kill()  # SIGKILL to the worker's whole process group, mid-step
    start_worker(concurrency=1)
    done = finished_workflow(client, alice.headers, wf["id"])
    assert done["status"] == "succeeded"  # the lost attempt ran again, then the dependent
    assert client.get(f"/api/jobs/{work}", headers=alice.headers).get_json()["attempts"] == 2


def test_a_canceled_running_step(client, alice, worker):
    wf = submit(client, alice, [probe("work", **LONG), probe("after", ["work"])])
    work = wf["steps"][0]["job_id"]
    wait_status(client, alice, work, "running")
    assert client.post(f"/api/jobs/{work}/cancel", headers=alice.headers).status_code == 202
    done = finished_workflow(client, alice.headers, wf["id"])
    assert done["status"] == "canceled"
    assert [s["status"] for s in done["steps"]] == ["canceled", "canceled"]


def test_a_step_that_exhausts_its_attempts(client, alice, worker):
    wf = submit(client, alice, [probe("flaky", fail_always=True), probe("then", ["flaky"]), probe("side")])
    done = finished_workflow(client, alice.headers, wf["id"])
    assert done["status"] == "failed"
    assert [s["status"] for s in done["steps"]] == ["failed", "canceled", "succeeded"]


def test_a_failed_step_discarded_from_the_dead_letter_set(client, alice, admin, worker):
    wf = submit(client, alice, [probe("flaky", fail_always=True), probe("then", ["flaky"])])
    flaky = wf["steps"][0]["job_id"]
    wait_status(client, alice, flaky, "failed")
    assert client.post(f"/api/admin/failed/{flaky}/discard", headers=admin.headers).status_code == 200
    done = finished_workflow(client, alice.headers, wf["id"])
    assert done["status"] == "failed" and done["steps"][1]["status"] == "canceled"


def test_a_dependency_canceled_where_no_hook_runs(client, alice, worker, settings):
    wf = submit(client, alice, [probe("slow", **LONG), probe("mid", ["slow"]), probe("last", ["mid"])])
    slow, mid, last = (s["job_id"] for s in wf["steps"])
    wait_status(client, alice, slow, "running")
    # A Celery revoke (Flower's button) cancels "mid" in the worker with no workflow hook: only the
    # maintenance sweep can settle "last".
    from workers.celery_app import make_celery

    app = make_celery(settings)
    app.control.revoke(mid)
    app.close()
    wait_status(client, alice, mid, "canceled", timeout_s=20)
    wait_status(client, alice, last, "canceled", timeout_s=20)
    assert status_of(client, alice, slow) == "running"  # settled by the sweep, not by slow finishing
    assert client.post(f"/api/jobs/{slow}/cancel", headers=alice.headers).status_code == 202
    done = finished_workflow(client, alice.headers, wf["id"])
    assert done["status"] == "canceled"
