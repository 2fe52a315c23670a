"""Search: ``GET /api/search?q=`` (bearer) and the ``/search`` page behind the header's search box."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, render_template, request

from shared.db import get_sessionmaker
from shared.flagship.search import search_characters
from shared.models import User
from web.auth import api_user_required, login_required
from web.services import services

bp = Blueprint("search", __name__)
MAX_QUERY_CHARS = 200


def run_search(user: User) -> tuple[str, list[dict[str, Any]]]:
    query = (request.args.get("q") or "").strip()[:MAX_QUERY_CHARS]
    limit = request.args.get("limit", default=20, type=int) or 20
    with get_sessionmaker(services().settings.resolved_database_url)() as db:
        return query, search_characters(db, user, query, limit=limit)


@bp.get("/api/search")
@api_user_required
def api_search() -> Any:
    """``{"results": [{"kind", "id", "name", "snippet"}]}``: the caller's records (admins: everyone's)."""
    _, results = run_search(g.user)
    return jsonify({"results": results})


@bp.get("/search")
@login_required
def search_page() -> Any:
    query, results = run_search(g.user)
    return render_template("search.html", query=query, results=results)
