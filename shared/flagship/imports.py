"""Reading an uploaded CSV of characters, and the workflow that imports it.

The first line names the columns: ``name, race, char_class, level`` and optionally ``alignment``
(``class`` is accepted for ``char_class``). Rows are checked by the job type's own params model later;
here only the file's shape is checked, with line numbers a person can find.

An import is a workflow (``shared.workflows``): one ``character.generate`` step per row (on ``low``, in
``IMPORT_PARALLEL_ROWS`` chains, each row ``continue`` on failure so one bad row stops no other), and a
last ``batch.summary`` step after every row that counts the outcomes and mails the owner.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from shared import defaults
from shared.workflows.plan import WorkflowSpec

MAX_IMPORT_ROWS = 500
MAX_IMPORT_BYTES = 1024 * 1024
REQUIRED_COLUMNS = ("name", "race", "char_class", "level")
COLUMN_ALIASES = {"class": "char_class"}
ROW_TYPE = "character.generate"
ROW_QUEUE = "low"  # bulk work: it must not delay characters people are waiting for
SUMMARY_TYPE = "batch.summary"


class ImportFileError(ValueError):
    """The file cannot be imported; ``errors`` maps a place (``line 3``, ``file``) to what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def parse_character_csv(data: bytes) -> list[dict[str, Any]]:
    """The rows of the file as character params (empty alignment left out)."""
    try:
        return _read_rows(data)
    except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit
        raise ImportFileError({"file": f"not readable as CSV ({exc})"}) from exc


def _read_rows(data: bytes) -> list[dict[str, Any]]:
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportFileError({"file": f"larger than {MAX_IMPORT_BYTES // 1024} KiB"})
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError({"file": "not UTF-8 text"}) from exc
    reader = csv.DictReader(io.StringIO(text))
    columns = [COLUMN_ALIASES.get(c.strip().lower(), c.strip().lower()) for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ImportFileError(
            {"file": f"the first line must name the columns; missing: {', '.join(missing)}"}
        )
    reader.fieldnames = columns
    rows: list[dict[str, Any]] = []
    for record in reader:
        if not any((v or "").strip() for k, v in record.items() if k is not None):
            continue  # blank line
        if len(rows) >= MAX_IMPORT_ROWS:
            raise ImportFileError({"file": f"more than {MAX_IMPORT_ROWS} rows"})
        row: dict[str, Any] = {c: (record.get(c) or "").strip() for c in REQUIRED_COLUMNS}
        if (record.get("alignment") or "").strip():
            row["alignment"] = record["alignment"].strip()
        rows.append(row)
    if not rows:
        raise ImportFileError({"file": "no rows after the header line"})
    return rows


def import_workflow(rows: list[dict[str, Any]], source_name: str | None) -> WorkflowSpec:
    """The workflow of an import: step ``i`` is row ``i``; the summary step is last."""
    source_name = source_name[:200] if source_name else None
    lanes = defaults.IMPORT_PARALLEL_ROWS
    keys = [f"row-{i + 1}" for i in range(len(rows))]
    steps: list[dict[str, Any]] = [
        {
            "key": key,
            "type": ROW_TYPE,
            "params": row,
            "queue": ROW_QUEUE,
            "after": [keys[i - lanes]] if i >= lanes else [],
            "on_failure": "continue",
        }
        for i, (key, row) in enumerate(zip(keys, rows, strict=True))
    ]
    steps.append(
        {"key": "summary", "type": SUMMARY_TYPE, "params": {"source_name": source_name}, "after": keys}
    )
    name = f"Import of {source_name}" if source_name else "Character import"
    return WorkflowSpec.model_validate({"name": name[:200], "steps": steps})
