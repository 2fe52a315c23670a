"""``content.index``: writes a character's text into the full-text index (or drops a deleted one)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import PermanentError
from shared.flagship.search import index_character, unindex_character
from shared.jobtypes import JobContext, JobType, RetryPolicy
from shared.models import Character, User


class IndexParams(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    character_id: str = Field(min_length=1, max_length=32, description="The character to (re)index.")


def perform(ctx: JobContext, params: IndexParams) -> dict[str, Any]:
    with ctx.session() as session:
        character = session.get(Character, params.character_id)
        if character is None:
            unindex_character(session, params.character_id)
            return {"character_id": params.character_id, "indexed": False}
        user = session.get(User, ctx.user_id)
        if character.user_id != ctx.user_id and not (user is not None and user.is_admin):
            raise PermanentError(f"No character {params.character_id} of yours.")
        index_character(session, character)
    ctx.progress(100, f"Indexed {character.name}")
    return {"character_id": params.character_id, "indexed": True}


JOB = JobType(
    name="content.index",
    description="Keeps a character's text in the full-text search index.",
    params=IndexParams,
    perform=perform,
    queue="default",
    retry=RetryPolicy(max_attempts=3, backoff_base_s=1.0, backoff_max_s=30.0),
    unique_by=lambda p: p.character_id,
    internal=True,
    time_limit_seconds=60,
)
