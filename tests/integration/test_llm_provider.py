"""Character generation with the OpenAI-compatible provider, through a real worker, against a local
HTTP server: a rate limit is retried after Retry-After, and the streamed story shows up as progress."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from shared.db import get_sessionmaker
from shared.models import Character
from tests.fake_llm import FakeLLM, stream
from tests.integration.helpers_app import events, submit, wait_finished

PIECES = ("Kael was born ", "in the ash of ", "a burning city, ", "and learned to ", "walk through fire.")


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    script = [(429, {"Retry-After": "1"}, b'{"error": "rate limited"}'), stream(*PIECES, delay_s=0.35)]
    with FakeLLM(*script) as server:
        yield server


@pytest.fixture
def env(env, llm):
    return {**env, **llm.worker_env(QUESTBOARD_LLM_MODEL="tiny-model")}


def test_rate_limited_then_streamed_story_becomes_the_background(client, alice, settings, llm, worker):
    params = {"name": "Kael", "race": "Tiefling", "char_class": "Sorcerer", "level": 7}
    job_id = submit(client, alice, "character.generate", params)["id"]
    done = wait_finished(client, alice, job_id, timeout_s=40)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    assert len(llm.requests) == 2 and llm.requests[1]["json"]["stream"] is True

    all_events = events(client, alice, job_id)
    assert any(e["status"] == "retrying" and "TransientError" in e["message"] for e in all_events)
    streamed = [e for e in all_events if e["message"].startswith("Writing the story: ")]
    assert len(streamed) >= 2, [e["message"] for e in all_events]
    texts = [e["message"].removeprefix("Writing the story: ") for e in streamed]
    assert all("".join(PIECES).startswith(t) for t in texts)  # each one a longer prefix of the story
    assert [len(t) for t in texts] == sorted(len(t) for t in texts)
    assert all(25 < e["progress"] < 75 for e in streamed)

    with get_sessionmaker(settings.resolved_database_url)() as db:
        character = db.scalars(select(Character).where(Character.job_id == job_id)).one()
    assert character.background == "".join(PIECES)


def test_bad_request_fails_the_job_without_retrying(client, alice, llm, worker):
    llm.script[:] = [(400, {}, b'{"error": {"message": "unknown model"}}')]
    params = {"name": "Nim", "race": "Gnome", "char_class": "Wizard", "level": 1}
    done = wait_finished(client, alice, submit(client, alice, "character.generate", params)["id"])
    assert done["status"] == "failed" and done["attempts"] == 1
    assert done["error"]["type"] == "PermanentError" and "400" in done["error"]["message"]
