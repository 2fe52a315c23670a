"""Export files: a user's jobs or characters as CSV or JSON, written row by row into the instance folder.

A file is ``<instance>/exports/<job id>.<format>``; it is written under a ``.part`` name and renamed when
complete, so a download never sees half a file. The retention cleanup deletes files with their jobs.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.flagship.characters import ordered_abilities
from shared.models import Character, Job
from shared.serialize import iso, job_to_dict
from shared.settings import exports_dir

Kind = Literal["jobs", "characters"]
Format = Literal["csv", "json"]
CONTENT_TYPES: dict[str, str] = {"csv": "text/csv", "json": "application/json"}
EXPORT_JOB = "report.export"
BATCH_ROWS = 500
# Spreadsheets run cells starting with these as formulas; such CSV cells get a leading apostrophe.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

CSV_COLUMNS: dict[str, list[str]] = {
    "jobs": [
        "id", "type", "status", "progress", "message", "queue", "attempts", "max_attempts",
        "error_type", "error_message", "created_at", "started_at", "finished_at",
    ],
    "characters": [
        "id", "name", "race", "char_class", "level", "alignment",
        "STR", "DEX", "CON", "INT", "WIS", "CHA", "background", "created_at",
    ],
}  # fmt: skip


def export_path(instance_dir: Path, job_id: str, fmt: str) -> Path:
    return exports_dir(instance_dir) / f"{job_id}.{fmt}"


def character_record(c: Character) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "race": c.race,
        "char_class": c.char_class,
        "level": c.level,
        "alignment": c.alignment,
        "abilities": ordered_abilities(c.abilities),
        "background": c.background,
        "created_at": iso(c.created_at),
    }


def _csv_row(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    if kind == "characters":
        flat = {**record, **(record.get("abilities") or {})}
    else:
        error = record.get("error") or {}
        flat = {**record, "error_type": error.get("type"), "error_message": error.get("message")}
    row = {col: flat.get(col) for col in CSV_COLUMNS[kind]}
    return {
        k: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v for k, v in row.items()
    }


def count_records(session: Session, kind: Kind, user_id: int) -> int:
    model = Job if kind == "jobs" else Character
    return session.scalar(select(func.count()).select_from(model).where(model.user_id == user_id)) or 0


def iter_records(session: Session, kind: Kind, user_id: int) -> Iterator[dict[str, Any]]:
    """The user's records, oldest first, read in batches (not all held in memory)."""
    if kind == "jobs":
        stmt = select(Job).where(Job.user_id == user_id).order_by(Job.created_at, Job.id)
        to_dict: Callable[[Any], dict[str, Any]] = job_to_dict
    else:
        stmt = (
            select(Character).where(Character.user_id == user_id).order_by(Character.created_at, Character.id)
        )
        to_dict = character_record
    for row in session.scalars(stmt.execution_options(yield_per=BATCH_ROWS)):
        yield to_dict(row)


def write_export(
    records: Iterator[dict[str, Any]],
    kind: Kind,
    fmt: Format,
    target: Path,
    on_row: Callable[[int], None] = lambda n: None,
) -> int:
    """Stream ``records`` into ``target``; ``on_row(n)`` after every row. Returns the number of rows."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    count = 0
    try:
        with open(part, "w", encoding="utf-8", newline="") as fh:
            if fmt == "csv":
                writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS[kind])
                writer.writeheader()
            else:
                fh.write("[")
            for record in records:
                if fmt == "csv":
                    writer.writerow(_csv_row(kind, record))
                else:
                    fh.write(("," if count else "") + "\n  " + json.dumps(record, ensure_ascii=False))
                count += 1
                on_row(count)
            if fmt == "json":
                fh.write("\n]\n" if count else "]\n")
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    return count
