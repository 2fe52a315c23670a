"""Backgrounds from any OpenAI-compatible chat-completions endpoint (``QUESTBOARD_LLM_PROVIDER=openai``).

``QUESTBOARD_LLM_URL`` is the API base (``http://host:port/v1``); ``/chat/completions`` is appended.
Errors map onto the job's retry policy: 429, 408 and 5xx (and timeouts, refused connections) are
``TransientError`` carrying ``Retry-After`` when the server sent one; any other 4xx is ``PermanentError``.
With ``on_text`` the request asks for a stream (``stream: true``, server-sent events) and each piece of
text is handed over as it arrives; a server that answers with plain JSON instead is read as such.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from shared.errors import PermanentError, TransientError
from shared.ratelimits import take_or_postpone
from workers.flagship.providers import CharacterSheet

DEFAULT_MODEL = "gpt-4o-mini"
MAX_TOKENS = 700
# However steadily a stream trickles, a story taking longer than this is abandoned (and retried).
STREAM_MAX_S = 300.0
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
SYSTEM_PROMPT = (
    "You write background stories for Dungeons & Dragons characters. Answer with three or four short "
    "paragraphs of plain prose: no headings, no lists, no game statistics."
)


def character_prompt(sheet: CharacterSheet) -> str:
    abilities = ", ".join(f"{k} {v}" for k, v in sheet.abilities.items())
    return (
        f"Write the background of {sheet.name}, a level {sheet.level} {sheet.race} {sheet.char_class}"
        f"{f' of {sheet.alignment} alignment' if sheet.alignment else ''}. "
        f"Ability scores: {abilities or 'unknown'}. Where they grew up, what made them an adventurer, "
        "and one habit their companions notice."
    )


def retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_for_status(status: int, headers: Any, detail: str) -> Exception:
    message = f"LLM endpoint answered {status}: {detail[:300]}"
    if status in RETRYABLE_STATUS or status >= 500:
        return TransientError(message, retry_after_s=retry_after_s(headers.get("Retry-After")))
    return PermanentError(message)


class OpenAIProvider:
    """Writes backgrounds through ``POST {base_url}/chat/completions``."""

    streams = True

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str | None,
        timeout_s: float,
        rate_limit: str | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.model = model or DEFAULT_MODEL
        self.timeout_s = timeout_s
        self.rate_limit = rate_limit  # calls per period across every worker (QUESTBOARD_LLM_RATE_LIMIT)
        self.redis_url = redis_url

    def write_background(self, sheet: CharacterSheet, on_text: Callable[[str], None] | None = None) -> str:
        """The story; ``on_text`` receives each streamed piece as it arrives. Over the rate limit it raises
        ``Postponed`` before calling: the job waits queued and runs again when a call is free."""
        if self.rate_limit and self.redis_url:
            take_or_postpone("LLM", self.rate_limit, self.redis_url)
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": character_prompt(sheet)},
            ],
            "max_tokens": MAX_TOKENS,
            "temperature": 0.9,
            "stream": on_text is not None,
        }
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout_s)  # noqa: S310 - configured URL
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", errors="replace") if exc.fp else ""
            raise error_for_status(exc.code, exc.headers, detail) from exc
        except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout
            raise TransientError(f"LLM endpoint unreachable: {exc}") from exc
        try:
            with response:
                if response.headers.get_content_type() == "text/event-stream":
                    text = self._read_stream(response, on_text or (lambda _: None))
                else:
                    text = self._read_json(response.read())
        except OSError as exc:  # the connection dropped or stalled mid-answer
            raise TransientError(f"LLM answer interrupted: {exc}") from exc
        if not text.strip():
            raise TransientError("the LLM endpoint returned no text")
        return text.strip()

    @staticmethod
    def _read_json(raw: bytes) -> str:
        try:
            payload = json.loads(raw)
            return str(payload["choices"][0]["message"]["content"] or "")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise TransientError(f"unexpected answer from the LLM endpoint: {raw[:200]!r}") from exc

    def _read_stream(self, lines: Iterable[bytes], on_text: Callable[[str], None]) -> str:
        deadline = time.monotonic() + STREAM_MAX_S
        pieces: list[str] = []
        for raw in lines:
            if time.monotonic() > deadline:
                raise TransientError(f"the LLM stream took longer than {STREAM_MAX_S:g} s")
            line = raw.decode("utf-8", errors="replace").strip()
            if not line.startswith("data:"):
                continue  # blank separators, comments, "event:" lines
            data = line.removeprefix("data:").strip()
            if data == "[DONE]":
                break
            piece = self._delta(data)
            if piece:
                pieces.append(piece)
                on_text(piece)
        return "".join(pieces)

    @staticmethod
    def _delta(data: str) -> str:
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise TransientError(f"unreadable stream event from the LLM endpoint: {data[:200]!r}") from exc
        if isinstance(event, dict) and event.get("error"):
            raise TransientError(f"the LLM endpoint reported an error mid-stream: {event['error']!r:.300}")
        try:
            return str(event["choices"][0]["delta"].get("content") or "")
        except (KeyError, IndexError, TypeError, AttributeError):
            return ""  # role-only or usage events carry no text
