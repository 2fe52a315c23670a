"""A worker that reaches Redis but not the database gives back the messages it cannot claim.

The worker's PostgreSQL link goes through a loopback proxy the test cuts (after dropping the open
connections, so every new one times out): a job sent meanwhile is taken by that worker, whose claim
fails. Failing the task would acknowledge the message while the job stays queued and noted in the
worker's reserved set, where no sweep looks for it: stranded for good. The message must go back to the
queue, and the job must succeed once the link heals.

Once the worker's own probe (workers.dbwatch) has found the database unreachable, a message it still
holds is given back without a claim: the claim would only wait out its connect timeout, one held
message after another, while a worker that reaches the database could run them.
"""

from __future__ import annotations

from pathlib import Path

from questboard.testing import wait_for
from tests.faults.proxy import LinkProxy
from tests.faults.test_outages import Installation

AFTER_HEAL_BOUND_S = 30.0


def test_a_worker_cut_from_the_database_does_not_strand_a_job(tmp_path: Path, postgres_url: str):
    proxy = LinkProxy("127.0.0.1", 5432)
    worker_db_url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert worker_db_url != postgres_url
    stack = Installation(tmp_path, worker_db_url, postgres_url)  # the worker behind the proxy, web direct
    try:
        proxy.cut()
        proxy.drop_all()
        resp = stack.submit()
        assert resp.status_code == 202, resp.get_json()
        job_id = resp.get_json()["id"]

        def claim_failed() -> bool:
            lines = [line for line in stack.worker.output().splitlines() if job_id in line]
            return any("OperationalError" in line or "given back" in line for line in lines)

        wait_for(claim_failed, 60, 0.2, what="the cut worker to take the job and fail its claim")
        proxy.heal()
        wait_for(
            stack.all_accepted_succeeded, AFTER_HEAL_BOUND_S, 0.3, what="the job to succeed after healing"
        )
    finally:
        proxy.heal()
        stack.close()
        proxy.close()


def test_a_message_held_while_the_probe_finds_the_database_unreachable_goes_back_untried(
    tmp_path: Path, postgres_url: str
):
    proxy = LinkProxy("127.0.0.1", 5432)
    worker_db_url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    # One job thread, two messages prefetched: the second waits in the worker while the first runs.
    stack = Installation(tmp_path, worker_db_url, postgres_url, 1, "--prefetch-multiplier", "2")
    try:
        running = stack.submit(steps=20, step_ms=500).get_json()["id"]
        wait_for(lambda: stack.job(running)["status"] == "running", 60, 0.2, what="the first job to run")
        held = stack.submit().get_json()["id"]
        wait_for(lambda: stack.redis.client().llen("default") == 0, 30, 0.1, what="the worker to hold it")
        assert stack.job(held)["status"] == "queued"
        proxy.cut()
        proxy.drop_all()
        output = stack.worker.output

        wait_for(lambda: "database unreachable: this worker stops" in output(), 60, 0.2, what="the probe")
        lines = lambda: [line for line in output().splitlines() if held in line]  # noqa: E731
        wait_for(
            lambda: any("given back" in line for line in lines()), 60, 0.2, what="the held job given back"
        )
        given_back = [line for line in lines() if "given back" in line]
        assert all("this worker's probe" in line for line in given_back), given_back
        assert not any("OperationalError" in line for line in lines())  # no claim was tried
        proxy.heal()
        wait_for(stack.all_accepted_succeeded, AFTER_HEAL_BOUND_S, 0.3, what="both jobs to succeed")
        assert stack.job(held)["attempts"] == 1
    finally:
        proxy.heal()
        stack.close()
        proxy.close()
