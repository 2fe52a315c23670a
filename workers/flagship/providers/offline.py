"""A deterministic background writer that needs no network and no model.

The same sheet always gives the same story (seeded by the sheet), and different sheets give varied ones:
each paragraph is picked from pools keyed by race, class, alignment and level.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable

from workers.flagship.providers import CharacterSheet

HOMELANDS = {
    "Human": [
        "the river town of Millford",
        "a border fort on the Greywall",
        "the crowded docks of Saltmarsh",
    ],
    "Elf": [
        "the moonlit groves of Eldenwood",
        "a tower city above the Silverrun",
        "a wandering elven caravan",
    ],
    "Dwarf": [
        "the deep halls of Khazad Dur",
        "a mining hold under the Ironpeaks",
        "a forge-clan of Stonehearth",
    ],
    "Halfling": [
        "the green hills of Bramblehollow",
        "a riverboat family on the Lazy Wend",
        "a busy inn at Oakcross",
    ],
    "Gnome": [
        "a clockwork workshop in Tinkerton",
        "a burrow beneath the Whisperwood",
        "a guild of lens-grinders",
    ],
    "Half-Elf": ["a trading post between two kingdoms", "the court of a minor baron", "a frontier village"],
    "Half-Orc": [
        "a war-camp of the Bloodfang tribe",
        "the fighting pits of Karsh",
        "a farmstead at the edge of the wild",
    ],
    "Tiefling": [
        "the shadowed alleys of Neverdusk",
        "a monastery that took in foundlings",
        "a travelling carnival",
    ],
    "Dragonborn": [
        "a clan stronghold on the Ember Coast",
        "an exile's camp in the Red Wastes",
        "a temple of Bahamut",
    ],
}
CALLINGS = {
    "Barbarian": "a fury that answered every threat with bare strength",
    "Bard": "a voice that could hush a tavern or start a riot",
    "Cleric": "a quiet certainty that a god was listening",
    "Druid": "the feeling that the forest itself was watching and approving",
    "Fighter": "a drill-yard discipline learned before they could read",
    "Monk": "a stillness that unsettled the people around them",
    "Paladin": "an oath spoken at dawn that still binds every choice",
    "Ranger": "tracks no one else could see and trails no one else would follow",
    "Rogue": "quick hands, quicker excuses and a knack for unlocked doors",
    "Sorcerer": "sparks that leapt from their fingers when they were angry",
    "Warlock": "a whispered bargain with something that does not sleep",
    "Wizard": "borrowed books, burnt eyebrows and a hunger for the next page",
}
TURNING_POINTS = [
    "When raiders burned the granary, {name} was the one who went after them alone.",
    "A stranger left {name} a sealed letter and vanished before dawn; it has never been opened.",
    "A fever took half the village one winter, and {name} swore never to feel that helpless again.",
    "{name} was blamed for a theft they did not commit, and left home rather than bow their head.",
    "An old mentor died with a secret on their lips, and {name} has chased its meaning since.",
    "A dragon's shadow passed over {name}'s childhood home, and nothing there was the same again.",
    "{name} won a wager against a noble, and the noble has never forgiven them for it.",
]
OUTLOOKS = {
    "Good": "They help first and ask questions later, even when it costs them.",
    "Evil": "They keep a ledger of every slight, and they always collect.",
    "Neutral": "They weigh every choice twice and trust the scales more than any banner.",
}
ORDER = {
    "Lawful": "A promise, once given, is a chain they wear willingly.",
    "Chaotic": "Rules are suggestions, and most suggestions are bad.",
    "Neutral": "They follow custom when it serves and drop it when it does not.",
    "True": "They follow custom when it serves and drop it when it does not.",
}
STANDING = [
    (1, "Their legend is still unwritten: a name few outside their home would know."),
    (5, "Their name is known in a few taverns now, usually followed by a story."),
    (11, "Bards sing about them in the larger cities, not always accurately."),
    (17, "Kings ask for them by name, and some of those kings are afraid."),
]
QUIRKS = [
    "They hum marching songs when nervous.",
    "They collect a small stone from every place they sleep.",
    "They refuse to eat anything they did not see cooked.",
    "They keep a journal in a cipher of their own making.",
    "They name every horse they ride after the same lost friend.",
    "They never sit with their back to a door.",
]


def _strongest(abilities: dict[str, int]) -> str:
    names = {
        "STR": "strength",
        "DEX": "agility",
        "CON": "endurance",
        "INT": "wit",
        "WIS": "insight",
        "CHA": "presence",
    }
    if not abilities:
        return "determination"
    return names.get(max(abilities, key=lambda k: abilities[k]), "determination")


SENTENCE_END = re.compile(r"(?<=[.!?])(\s+)")


class OfflineProvider:
    """Writes a readable, varied background from the sheet alone.

    It streams like a model: one sentence at a time, pausing ``pace_ms`` after each, so the job's progress
    moves and a cancel (checked by the progress callback between sentences) stops it mid-story.
    """

    streams = True

    def __init__(self, pace_ms: int = 0) -> None:
        self.pace_ms = pace_ms
        self.expected_chars: int | None = None  # the story's length, known once it is composed

    def write_background(self, sheet: CharacterSheet, on_text: Callable[[str], None] | None = None) -> str:
        """The story; with ``on_text``, each sentence is passed to it as it is "written"."""
        text = self.compose(sheet)
        self.expected_chars = len(text)
        if on_text is not None or self.pace_ms:
            for piece in _pieces(text):
                if self.pace_ms:
                    time.sleep(self.pace_ms / 1000)
                if on_text is not None:
                    on_text(piece)
        return text

    def compose(self, sheet: CharacterSheet) -> str:
        """The whole story at once (deterministic for a sheet)."""
        seed_src = (
            f"{sheet.seed}|{sheet.name}|{sheet.race}|{sheet.char_class}|{sheet.level}|{sheet.alignment}"
        )
        rng = random.Random(hashlib.sha256(seed_src.encode()).hexdigest())
        homeland = rng.choice(HOMELANDS.get(sheet.race, ["a place they rarely speak of"]))
        calling = CALLINGS.get(sheet.char_class, "a restlessness no one could name")
        article = "an" if sheet.race[0] in "AEIOU" else "a"
        first = (
            f"{sheet.name} grew up in {homeland}, {article} {sheet.race.lower()} among neighbours who "
            f"expected a quiet life of them. What came instead was {calling}. "
            f"Those who knew {sheet.name} then remember their {_strongest(sheet.abilities)} above all."
        )
        second = (
            rng.choice(TURNING_POINTS).format(name=sheet.name)
            + " "
            + (f"That road led, step by uneven step, to the life of a {sheet.char_class.lower()}.")
        )
        alignment = sheet.alignment or "True Neutral"
        order_word, _, moral_word = alignment.partition(" ")
        third = " ".join(
            [
                ORDER.get(order_word, ORDER["Neutral"]),
                OUTLOOKS.get(moral_word, OUTLOOKS["Neutral"]),
                rng.choice(QUIRKS),
            ]
        )
        standing = next(text for lvl, text in reversed(STANDING) if sheet.level >= lvl)
        fourth = f"At level {sheet.level}, {sheet.name} has come far from {homeland}. {standing}"
        return "\n\n".join([first, second, third, fourth])


def _pieces(text: str) -> list[str]:
    """``text`` cut after every sentence (the pieces join back to ``text``)."""
    parts = SENTENCE_END.split(text)
    return ["".join(parts[i : i + 2]) for i in range(0, len(parts), 2)]
