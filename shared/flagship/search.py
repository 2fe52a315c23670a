"""Full-text search over characters: the index rows ``content.index`` writes and the queries over them.

SQLite answers from the FTS5 table ``character_search_fts``; PostgreSQL from the generated ``document``
tsvector (both made by migration 0004). A query is reduced to words and each word matches as a prefix,
so user input never reaches either query language unescaped.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from shared.models import Character, CharacterSearch, User, utcnow

MAX_QUERY_WORDS = 8
MAX_RESULTS = 50
SNIPPET_WORDS = 16
_WORD = re.compile(r"[^\W_]+")

SQLITE_QUERY = """
SELECT s.character_id, s.name, snippet(character_search_fts, 1, '', '', '…', :words) AS snippet
FROM character_search_fts JOIN character_search AS s ON s.id = character_search_fts.rowid
WHERE character_search_fts MATCH :query {owner}
ORDER BY bm25(character_search_fts, 10.0, 1.0) LIMIT :limit
"""

POSTGRES_QUERY = """
SELECT s.character_id, s.name,
       ts_headline('simple', s.body, q, :headline) AS snippet
FROM character_search AS s, to_tsquery('simple', :query) AS q
WHERE s.document @@ q {owner}
ORDER BY ts_rank(s.document, q) DESC, s.name LIMIT :limit
"""


def query_words(raw: str) -> list[str]:
    """The words of a search box input (letters and digits), lower-cased, at most ``MAX_QUERY_WORDS``."""
    return [w.lower() for w in _WORD.findall(raw or "")][:MAX_QUERY_WORDS]


def index_character(session: Session, character: Character) -> None:
    """Write (or rewrite) the character's searchable text."""
    body = "\n".join(
        part
        for part in (
            f"{character.race} {character.char_class} level {character.level}",
            character.alignment or "",
            character.background,
        )
        if part
    )
    row = session.scalars(select(CharacterSearch).where(CharacterSearch.character_id == character.id)).first()
    if row is None:
        row = CharacterSearch(character_id=character.id)
        session.add(row)
    row.user_id, row.name, row.body, row.indexed_at = character.user_id, character.name, body, utcnow()
    session.flush()


def unindex_character(session: Session, character_id: str) -> None:
    session.execute(delete(CharacterSearch).where(CharacterSearch.character_id == character_id))


def search_characters(session: Session, user: User, raw_query: str, limit: int = 20) -> list[dict[str, Any]]:
    """Characters matching every word (as a prefix): the caller's own, or everyone's for an admin."""
    words = query_words(raw_query)
    if not words:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        sql, query = SQLITE_QUERY, " ".join(f'"{w}"*' for w in words)
    elif dialect == "postgresql":
        sql, query = POSTGRES_QUERY, " & ".join(f"{w}:*" for w in words)
    else:
        raise NotImplementedError(f"search needs SQLite or PostgreSQL, not {dialect}")
    params: dict[str, Any] = {
        "query": query,
        "limit": max(1, min(limit, MAX_RESULTS)),
        "words": SNIPPET_WORDS,
        "headline": f'StartSel="",StopSel="",MaxFragments=1,MinWords=6,MaxWords={SNIPPET_WORDS}',
    }
    owner = ""
    if not user.is_admin:
        owner, params["user_id"] = "AND s.user_id = :user_id", user.id
    rows = session.execute(text(sql.format(owner=owner)), params).all()
    return [
        {"kind": "character", "id": r.character_id, "name": r.name, "snippet": _tidy(r.snippet)} for r in rows
    ]


def _tidy(snippet: str | None) -> str:
    return " ".join((snippet or "").split())
