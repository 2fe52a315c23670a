"""Batch import of characters from a CSV: the form at ``/characters/import`` and ``POST /api/imports``.

The file is read here (shape and size); each row is then validated as ``character.generate`` params when
the import's workflow is submitted (``shared.imports.import_workflow``), and errors are reported by CSV line.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, g, jsonify, redirect, render_template, request, url_for

from shared.errors import InvalidRequest, LimitReached
from shared.flagship.imports import (
    MAX_IMPORT_ROWS,
    REQUIRED_COLUMNS,
    ImportFileError,
    import_workflow,
    parse_character_csv,
)
from web.auth import api_error, api_user_required, login_required
from web.workflows import workflows

bp = Blueprint("imports", __name__)
_ROW_FIELD = re.compile(r"^steps\.(\d+)\.params\.?(.*)$")


def by_line(fields: dict[str, str]) -> dict[str, str]:
    """``steps.<i>.params.<field>`` errors (step ``i`` is row ``i``) as ``line <n>`` (the header: line 1)."""
    out: dict[str, str] = {}
    for key, message in fields.items():
        match = _ROW_FIELD.match(key)
        place = f"line {int(match.group(1)) + 2}" if match else key
        detail = f"{match.group(2)}: {message}" if match and match.group(2) else message
        out[place] = f"{out[place]}; {detail}" if place in out else detail
    return out


def submit_import(data: bytes, filename: str | None) -> dict[str, Any]:
    """Submit the import's workflow for an uploaded file; ImportFileError names the lines that are wrong."""
    rows = parse_character_csv(data)
    try:
        return workflows().create(g.user, import_workflow(rows, filename), system=True)
    except InvalidRequest as exc:
        raise ImportFileError(by_line(exc.fields or {"file": exc.message})) from exc


def _render(errors: dict[str, str] | None = None, message: str | None = None, status: int = 200) -> Any:
    context = {
        "errors": errors or {},
        "form_error": message,
        "columns": REQUIRED_COLUMNS,
        "max_rows": MAX_IMPORT_ROWS,
    }
    return render_template("import.html", **context), status


@bp.get("/characters/import")
@login_required
def import_form() -> Any:
    return _render()


@bp.post("/characters/import")
@login_required
def import_upload() -> Any:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render({"file": "choose a CSV file"}, "Nothing was uploaded.", 422)
    try:
        workflow = submit_import(upload.read(), upload.filename)
    except ImportFileError as exc:
        return _render(exc.errors, "The file cannot be imported; nothing was started.", 422)
    except LimitReached as exc:
        return _render(message=exc.message, status=429)
    return redirect(url_for("workflows.workflow_page", workflow_id=workflow["id"]))


@bp.post("/api/imports")
@api_user_required
def api_import() -> Any:
    """The CSV as the body (``text/csv``) or as the ``file`` field of a multipart form → 202 workflow."""
    upload = request.files.get("file")
    data, name = (upload.read(), upload.filename) if upload else (request.get_data(), None)
    try:
        return jsonify(submit_import(data, name)), 202
    except ImportFileError as exc:  # a 429 (LimitReached) is answered by the API's error handler
        return api_error(422, "invalid", "The file cannot be imported.", fields=exc.errors)
