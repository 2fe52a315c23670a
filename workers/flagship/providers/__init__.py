"""Where character backgrounds come from: a provider chosen by ``QUESTBOARD_LLM_PROVIDER``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from shared.errors import PermanentError
from shared.settings import get_settings


@dataclass(frozen=True)
class CharacterSheet:
    name: str
    race: str
    char_class: str
    level: int
    alignment: str | None
    abilities: dict[str, int] = field(default_factory=dict)
    seed: str = ""


class BackgroundProvider(Protocol):
    def write_background(self, sheet: CharacterSheet) -> str:
        """A multi-paragraph background story for the character."""


def get_provider() -> BackgroundProvider:
    name = get_settings().llm_provider
    if name == "offline":
        from workers.flagship.providers.offline import OfflineProvider

        return OfflineProvider(pace_ms=get_settings().offline_pace_ms)
    if name == "openai":
        from workers.flagship.providers.openai import OpenAIProvider

        settings = get_settings()
        if not settings.llm_url:
            raise PermanentError(
                "QUESTBOARD_LLM_PROVIDER=openai needs QUESTBOARD_LLM_URL (e.g. http://host:port/v1)"
            )
        return OpenAIProvider(
            settings.llm_url,
            settings.llm_api_key,
            settings.llm_model,
            settings.llm_timeout_s,
            rate_limit=settings.llm_rate_limit,
            redis_url=settings.redis_url,
        )
    raise PermanentError(f"unknown QUESTBOARD_LLM_PROVIDER {name!r} (known: offline, openai)")
