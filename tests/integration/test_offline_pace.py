"""The offline provider paces itself like a real model (QUESTBOARD_OFFLINE_PACE_MS, default about 3 s a
character): the progress bar moves through several points, and a cancel stops the story mid-way."""

from __future__ import annotations

from datetime import datetime

import pytest

from questboard.testing import wait_for
from tests.integration.helpers_app import events, job, submit, wait_finished

PARAMS = {"name": "Mira", "race": "Elf", "char_class": "Wizard", "level": 5}


@pytest.fixture
def env(env):
    # The default pace, as `questboard up` runs it (the test environment sets 0).
    return {k: v for k, v in env.items() if k != "QUESTBOARD_OFFLINE_PACE_MS"}


def test_a_character_takes_seconds_with_progress_at_each_step(client, alice, worker):
    done = wait_finished(client, alice, submit(client, alice, "character.generate", PARAMS)["id"])
    assert done["status"] == "succeeded", done
    took = datetime.fromisoformat(done["finished_at"]) - datetime.fromisoformat(done["started_at"])
    assert 2.0 <= took.total_seconds() <= 5.0, took
    percents = [e["progress"] for e in events(client, alice, done["id"])]
    for step in (0, 25, 75, 100):  # the contract's points stay
        assert step in percents, percents
    writing = sorted({p for p in percents if 25 < p < 75})
    assert len(writing) >= 3, percents  # the bar visibly moves while the story is written


def test_a_running_character_can_be_canceled(client, alice, worker):
    job_id = submit(client, alice, "character.generate", PARAMS)["id"]
    wait_for(lambda: job(client, alice, job_id)["progress"] > 25, 10, what="the story being written")
    resp = client.post(f"/api/jobs/{job_id}/cancel", headers=alice.headers)
    assert resp.status_code == 202, resp.get_json()
    done = wait_finished(client, alice, job_id, timeout_s=5)
    assert done["status"] == "canceled" and done["result"] is None
