"""The OpenAI-compatible provider against a real local HTTP server: streaming, errors, timeouts."""

from __future__ import annotations

import pytest

from questboard.testing import free_port
from shared.errors import PermanentError, TransientError
from shared.jobtypes import RetryPolicy
from tests.fake_llm import FakeLLM, completion, stream
from workers.flagship.providers import CharacterSheet
from workers.flagship.providers.openai import OpenAIProvider, retry_after_s

SHEET = CharacterSheet("Mira", "Elf", "Ranger", 5, "Chaotic Good", {"DEX": 16}, seed="x")


def provider(url: str, timeout_s: float = 5.0) -> OpenAIProvider:
    return OpenAIProvider(url, "sk-test", "tiny-model", timeout_s)


def test_streamed_text_arrives_piece_by_piece_and_whole():
    pieces: list[str] = []
    with FakeLLM(stream("Mira grew up ", "under the ", "silver trees.")) as llm:
        text = provider(llm.base_url).write_background(SHEET, on_text=pieces.append)
    assert pieces == ["Mira grew up ", "under the ", "silver trees."]
    assert text == "Mira grew up under the silver trees."
    sent = llm.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["headers"]["Authorization"] == "Bearer sk-test"
    assert sent["json"]["stream"] is True and sent["json"]["model"] == "tiny-model"
    assert "Mira" in sent["json"]["messages"][-1]["content"]


def test_plain_json_answer_without_streaming():
    with FakeLLM(completion("  A quiet life, then a dragon.  ")) as llm:
        assert provider(llm.base_url + "/").write_background(SHEET) == "A quiet life, then a dragon."
    assert llm.requests[0]["json"]["stream"] is False


def test_rate_limit_is_transient_with_the_servers_retry_after():
    with FakeLLM((429, {"Retry-After": "7"}, b'{"error": "slow down"}')) as llm:
        with pytest.raises(TransientError) as caught:
            provider(llm.base_url).write_background(SHEET)
    assert caught.value.retry_after_s == 7.0
    assert RetryPolicy().delay_s(1, caught.value) == 7.0  # the job waits what the server asked
    assert "429" in str(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(status):
    with FakeLLM((status, {}, b"oops")) as llm:
        with pytest.raises(TransientError):
            provider(llm.base_url).write_background(SHEET)


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_client_errors_are_permanent(status):
    with FakeLLM((status, {}, b'{"error": {"message": "bad model"}}')) as llm:
        with pytest.raises(PermanentError, match=str(status)):
            provider(llm.base_url).write_background(SHEET)
    assert RetryPolicy().decide(PermanentError(), 1) == "fail"


def test_a_stalled_stream_times_out_as_transient():
    with FakeLLM(stream("Slowly", " and more slowly", delay_s=1.5)) as llm:
        with pytest.raises(TransientError, match="interrupted|unreachable"):
            provider(llm.base_url, timeout_s=0.5).write_background(SHEET, on_text=lambda _: None)


def test_nobody_listening_is_transient():
    with pytest.raises(TransientError, match="unreachable"):
        provider(f"http://127.0.0.1:{free_port()}/v1", timeout_s=1).write_background(SHEET)


def test_retry_after_as_http_date_and_garbage():
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
    assert retry_after_s("soon") is None and retry_after_s(None) is None
