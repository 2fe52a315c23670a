"""JSON routes of the job browser (contract §3): a job's attempts, the operators' list over every job and
its bulk actions. Thin: validation is the pydantic models of ``shared.jobbrowser``, the work is there too.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from shared.errors import InvalidRequest, ServiceError
from shared.jobbrowser import BulkAction, BulkRequest, JobBrowser, JobQuery, apply_bulk, parse_or_422
from web.admin import api_viewer_required
from web.auth import api_admin_required, api_user_required
from web.services import operations, services

bp = Blueprint("job_browser_api", __name__)


def job_browser() -> JobBrowser:
    """The app's JobBrowser, built on first use."""
    browser = current_app.extensions.get("questboard_browser")
    if browser is None:
        browser = JobBrowser(services().settings.resolved_database_url)
        current_app.extensions["questboard_browser"] = browser
    return browser


@bp.get("/api/jobs/<job_id>/attempts")
@api_user_required
def job_attempts(job_id: str) -> Any:
    return jsonify(job_browser().attempts(g.user, job_id))


@bp.get("/api/admin/jobs")
@api_viewer_required
def admin_jobs() -> Any:
    query = parse_or_422(JobQuery, request.args.to_dict(), "query")
    jobs, cursor = job_browser().list(query)
    return jsonify({"jobs": jobs, "next_cursor": cursor})


def bulk_body() -> BulkRequest:
    """The body of a bulk action: 400 if it is not JSON, 422 if it is empty or selects nothing."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise InvalidRequest('Give {"ids": [...]} or {"filter": {...}}.', {"__root__": "empty body"})
    body = request.get_json(silent=True, force=True)
    if body is None:
        raise ServiceError("The request body must be valid JSON.")
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.", {"__root__": "not an object"})
    return parse_or_422(BulkRequest, body, "selection")


def run_bulk(action: BulkAction, selection: BulkRequest) -> int:
    """Apply ``action`` to the selection as ``g.user`` through the single-job paths; audited once."""
    ops = operations()
    single = {
        "cancel": lambda job_id: services().jobs.cancel(g.user, job_id),
        "retry": ops.dead_letters.retry,
        "discard": ops.dead_letters.discard,
    }[action]
    count = apply_bulk(job_browser(), selection, action, single)
    ops.record(g.user.email, f"jobs.{action}", "bulk", {**selection.selection(), "count": count})
    return count


@bp.post("/api/admin/jobs/<any(cancel, retry, discard):action>")
@api_admin_required
def admin_jobs_bulk(action: BulkAction) -> Any:
    return jsonify({"count": run_bulk(action, bulk_body())})
