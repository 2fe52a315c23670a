"""The built-in job types, tested the way a job author would: with the shipped pytest plugin."""

from __future__ import annotations

import pytest

from questboard.testing import wait_for
from shared.errors import InvalidRequest


def test_probe_reports_every_step_and_returns_its_result(questboard):
    questboard.submit("diagnostics.probe", {"steps": 3})
    questboard.assert_enqueued("diagnostics.probe", params={"steps": 3}, count=1)
    [job] = questboard.perform_enqueued()
    assert job["status"] == "succeeded" and job["result"] == {"steps": 3, "attempt": 1}
    events = questboard.service.events(questboard.user, job["id"])
    assert [e["progress"] for e in events if e["status"] == "running"] == [0, 33, 66, 100]


def test_probe_fails_first_attempts_then_succeeds(questboard, questboard_worker):
    questboard.submit("diagnostics.probe", {"fail_first_attempts": 1})
    [job] = questboard.perform_enqueued()
    assert job["status"] == "succeeded" and job["attempts"] == 2


def test_perform_enqueued_returns_a_job_the_running_worker_already_finished(questboard, questboard_worker):
    submitted = questboard.submit("diagnostics.probe", {"steps": 1})
    wait_for(
        lambda: questboard.service.get(questboard.user, submitted["id"])["status"] == "succeeded",
        30,
        0.05,
        what="the running worker to finish the probe on its own",
    )
    [job] = questboard.perform_enqueued()
    assert job["id"] == submitted["id"] and job["status"] == "succeeded"
    assert questboard.perform_enqueued() == []


def test_character_generation_writes_a_background(questboard):
    questboard.submit(
        "character.generate",
        {
            "name": "Tamsin Vale",
            "race": "Halfling",
            "char_class": "Bard",
            "level": 3,
            "alignment": "Neutral Good",
        },
    )
    [job] = questboard.perform_enqueued()
    assert job["status"] == "succeeded" and job["result"]["url"].startswith("/characters/")
    assert job["progress"] == 100


def test_character_params_are_checked_before_enqueueing(questboard):
    with pytest.raises(InvalidRequest) as err:
        questboard.submit(
            "character.generate", {"name": "X", "race": "Robot", "char_class": "Bard", "level": 30}
        )
    assert {"params.race", "params.level"} <= set(err.value.fields)
    questboard.assert_no_enqueued()
