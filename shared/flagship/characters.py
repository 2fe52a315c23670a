"""A character as the API and the pages show it: the sheet, abilities in the D&D order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared.db import get_sessionmaker
from shared.jobpages import character_to_dict
from shared.models import Character, User

# The order every sheet lists abilities in (a stored dict may come back in another order: JSONB sorts keys).
ABILITY_ORDER = ("STR", "DEX", "CON", "INT", "WIS", "CHA")
# The choices a character is made from (the job's params and the page's form).
RACES = ("Human", "Elf", "Dwarf", "Halfling", "Gnome", "Half-Elf", "Half-Orc", "Tiefling", "Dragonborn")
CLASSES = (
    "Barbarian",
    "Bard",
    "Cleric",
    "Druid",
    "Fighter",
    "Monk",
    "Paladin",
    "Ranger",
    "Rogue",
    "Sorcerer",
    "Warlock",
    "Wizard",
)
ALIGNMENTS = (
    "Lawful Good",
    "Neutral Good",
    "Chaotic Good",
    "Lawful Neutral",
    "True Neutral",
    "Chaotic Neutral",
    "Lawful Evil",
    "Neutral Evil",
    "Chaotic Evil",
)


def ordered_abilities(abilities: dict[str, Any] | None) -> dict[str, Any]:
    """``abilities`` as STR, DEX, CON, INT, WIS, CHA (any other key after them, as found)."""
    abilities = abilities or {}
    ordered = {name: abilities[name] for name in ABILITY_ORDER if name in abilities}
    ordered.update({k: v for k, v in abilities.items() if k not in ordered})
    return ordered


def character_result(character: Character) -> dict[str, Any]:
    """The result of a ``character.generate`` job: the character itself (contract §5)."""
    return {
        "id": character.id,
        "name": character.name,
        "race": character.race,
        "char_class": character.char_class,
        "level": character.level,
        "alignment": character.alignment,
        "abilities": ordered_abilities(character.abilities),
        "background": character.background,
        "url": f"/characters/{character.id}",
    }


def user_characters(database_url: str, user: User) -> list[dict[str, Any]]:
    """The user's characters, newest first (the ``/characters`` page)."""
    with get_sessionmaker(database_url)() as session:
        rows = session.scalars(
            select(Character)
            .where(Character.user_id == user.id)
            .order_by(Character.created_at.desc(), Character.id)
        )
        return [character_to_dict(c) for c in rows]
