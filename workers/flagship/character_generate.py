"""``character.generate``: builds a D&D character and has the LLM provider write its background."""

from __future__ import annotations

import random
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from shared.choices import CaseInsensitive
from shared.flagship.characters import ABILITY_ORDER, ALIGNMENTS, CLASSES, RACES, character_result
from shared.flagship.imports import SUMMARY_TYPE
from shared.jobtypes import JobContext, JobType, RetryPolicy
from shared.models import Character, Job
from shared.settings import get_settings
from workers import followups
from workers.flagship.providers import CharacterSheet, get_provider
from workers.flagship.providers.streaming import write_with_progress

INDEX_JOB = "content.index"
ABILITIES = ABILITY_ORDER
# Which abilities each class wants highest, best first.
CLASS_PRIORITY = {
    "Barbarian": ("STR", "CON", "DEX"),
    "Bard": ("CHA", "DEX", "CON"),
    "Cleric": ("WIS", "CON", "STR"),
    "Druid": ("WIS", "CON", "DEX"),
    "Fighter": ("STR", "CON", "DEX"),
    "Monk": ("DEX", "WIS", "CON"),
    "Paladin": ("STR", "CHA", "CON"),
    "Ranger": ("DEX", "WIS", "CON"),
    "Rogue": ("DEX", "INT", "CHA"),
    "Sorcerer": ("CHA", "CON", "DEX"),
    "Warlock": ("CHA", "CON", "DEX"),
    "Wizard": ("INT", "CON", "DEX"),
}

# Matched in any letter case, stored canonical ("halfling" -> "Halfling"): see shared.choices.
Race = Annotated[Literal[RACES], CaseInsensitive()]  # type: ignore[valid-type]
CharClass = Annotated[Literal[CLASSES], CaseInsensitive()]  # type: ignore[valid-type]
Alignment = Annotated[Literal[ALIGNMENTS], CaseInsensitive()]  # type: ignore[valid-type]


class CharacterParams(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    race: Race
    char_class: CharClass
    level: int = Field(ge=1, le=20)
    alignment: Alignment | None = None

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("name must be printable text")
        return value


def roll_abilities(seed: str, char_class: str) -> dict[str, int]:
    """4d6-drop-lowest six times, the best rolls placed where the class needs them."""
    rng = random.Random(seed)
    rolls = sorted((sum(sorted(rng.randint(1, 6) for _ in range(4))[1:]) for _ in range(6)), reverse=True)
    order = list(CLASS_PRIORITY[char_class]) + [a for a in ABILITIES if a not in CLASS_PRIORITY[char_class]]
    return {ability: rolls[i] for i, ability in enumerate(order)}


def perform(ctx: JobContext, params: CharacterParams) -> dict[str, Any]:
    ctx.progress(0, f"Gathering the details of {params.name}")
    abilities = roll_abilities(ctx.job_id, params.char_class)
    summary = ", ".join(f"{k} {v}" for k, v in abilities.items())
    ctx.progress(25, f"Rolled abilities: {summary}")
    sheet = CharacterSheet(
        name=params.name,
        race=params.race,
        char_class=params.char_class,
        level=params.level,
        alignment=params.alignment,
        abilities=abilities,
        seed=ctx.job_id,
    )
    background = write_with_progress(ctx, get_provider(), sheet)  # streamed into progress where it can
    words = len(background.split())
    ctx.progress(75, f"Wrote a background story of {words} words")
    with ctx.session() as session:
        # A retried attempt may find the character its earlier attempt saved.
        existing = session.scalars(select(Character).where(Character.job_id == ctx.job_id)).first()
        if existing is not None:
            session.delete(existing)
            session.flush()
        character = Character(
            user_id=ctx.user_id,
            job_id=ctx.job_id,
            name=params.name,
            race=params.race,
            char_class=params.char_class,
            level=params.level,
            alignment=params.alignment,
            abilities=abilities,
            background=background,
        )
        session.add(character)
        session.flush()
        character_id = character.id
        result = character_result(character)  # the job's result is the character (contract §5)
    after_character_saved(ctx, character_id, params.name)  # the chain: index, then notify
    ctx.progress(100, f"{params.name} is ready")
    return result


def after_character_saved(ctx: JobContext, character_id: str, name: str) -> None:
    """The rest of the chain: index the character; tell the owner, unless it is a row of a batch import
    (the import's summary step mails one summary instead)."""
    # Keyed by the character: a retried attempt saves a new one, which needs its own index and mail.
    followups.submit_child(
        ctx, INDEX_JOB, {"character_id": character_id}, f"index:{character_id}", for_system=True
    )
    with ctx.session() as session:
        workflow_id = session.scalar(select(Job.workflow_id).where(Job.id == ctx.job_id))
        in_batch = workflow_id is not None and session.scalar(
            select(Job.id).where(Job.workflow_id == workflow_id, Job.type == SUMMARY_TYPE).limit(1)
        )
    if not in_batch:
        url = f"{get_settings().base_url.rstrip('/')}/characters/{character_id}"
        followups.notify_owner(
            ctx,
            f"{name} is ready",
            f"Hello,\n\nYour character {name} is ready:\n\n{url}\n\nHappy adventuring!\n",
            key=f"notify:{character_id}",
        )


JOB = JobType(
    name="character.generate",
    description="Builds a D&D character with a generated background story.",
    params=CharacterParams,
    perform=perform,
    queue="default",
    retry=RetryPolicy(max_attempts=3, backoff_base_s=2.0, backoff_max_s=60.0),
    time_limit_seconds=300,
)
