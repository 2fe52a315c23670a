"""LLM calls keep to ``QUESTBOARD_LLM_RATE_LIMIT`` across a real worker's processes: a character whose
call would go over the limit waits ``queued`` without spending an attempt and is written when the window
allows (the OpenAI-compatible provider against a local HTTP server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from shared.settings import Settings
from tests.fake_llm import FakeLLM, completion
from tests.integration.helpers_app import events, submit, wait_finished

LIMIT, PERIOD_S = 2, 4


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM(completion("A quiet childhood by the sea, then the road.")) as server:
        yield server


@pytest.fixture
def env(env, llm):
    return {**env, **llm.worker_env(QUESTBOARD_LLM_RATE_LIMIT=f"{LIMIT} per {PERIOD_S} seconds")}


def test_llm_calls_keep_to_the_rate_limit_and_waiting_jobs_spend_no_attempt(client, alice, llm, worker):
    ids = [
        submit(
            client,
            alice,
            "character.generate",
            {"name": f"Ash {n}", "race": "Human", "char_class": "Bard", "level": 2},
        )["id"]
        for n in range(5)
    ]

    done = [wait_finished(client, alice, job_id, timeout_s=60) for job_id in ids]

    assert [(j["status"], j["attempts"]) for j in done] == [("succeeded", 1)] * 5
    assert len(llm.requests) == 5  # one call per character: none lost, none repeated
    times = sorted(r["at"] for r in llm.requests)
    # No PERIOD_S window holds more than LIMIT calls (0.25 s for the request to travel after its start
    # was counted).
    gaps = [later - first for first, later in zip(times, times[LIMIT:], strict=False)]
    assert min(gaps) >= PERIOD_S - 0.25, times
    waited = [
        e
        for job_id in ids
        for e in events(client, alice, job_id)
        if e["status"] == "queued" and e["message"].startswith("Waiting for the LLM rate limit")
    ]
    assert waited, "at least 3 of the 5 characters had to wait for the window"
    assert f"{LIMIT} per {PERIOD_S} seconds" in waited[0]["message"]


@pytest.mark.parametrize("value", ["twenty a minute", "0 per minute"])
def test_a_rate_limit_that_is_not_one_is_refused_at_start_up(value, monkeypatch):
    monkeypatch.setenv("QUESTBOARD_LLM_RATE_LIMIT", value)
    with pytest.raises(ValidationError, match="QUESTBOARD_LLM_RATE_LIMIT"):
        Settings()


def test_the_limit_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("QUESTBOARD_LLM_RATE_LIMIT", "none")
    assert Settings().llm_rate_limit is None
    monkeypatch.delenv("QUESTBOARD_LLM_RATE_LIMIT")
    assert Settings().llm_rate_limit == "20 per minute"
