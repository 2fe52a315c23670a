"""The admin JSON API (contract §3, "Admin API"): bearer tokens only, so the blueprint is CSRF-exempt.

Admins may do everything; viewers (read-only operators) may GET and get 403 on every action; other users
get 403 and a missing token 401. Every action is audit-logged with the caller's email.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, g, jsonify, request

from shared.errors import InvalidRequest, ServiceError
from shared.models import User
from web.auth import api_admin_required, api_error, api_user_required
from web.services import operations, recurring_tasks

F = TypeVar("F", bound=Callable[..., Any])
bp = Blueprint("admin_api", __name__, url_prefix="/api/admin")


def can_view(user: User | None) -> bool:
    """Admins and viewers see the operator console and read the admin API."""
    return user is not None and bool(user.is_admin or user.is_viewer)


def api_viewer_required(view: F) -> F:
    """401 without a token, 403 unless the token is an admin's or a viewer's."""

    @wraps(view)
    @api_user_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not can_view(g.user):
            return api_error(403, "forbidden", "This needs an admin (or viewer) token.")
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def _type_from_body() -> str:
    body = request.get_json(silent=True, force=True)
    if body is None:
        raise ServiceError('The request body must be valid JSON: {"type": T}.')
    job_type = body.get("type") if isinstance(body, dict) else None
    if not isinstance(job_type, str) or not job_type.strip():
        raise InvalidRequest('Give the job type: {"type": T}.', {"type": "required"})
    return job_type


@bp.get("/stats")
@api_viewer_required
def stats() -> Any:
    return jsonify(operations().stats())


@bp.get("/queues")
@api_viewer_required
def queues() -> Any:
    return jsonify(operations().queues())


@bp.post("/queues/<name>/<any(pause, resume):action>")
@api_admin_required
def queue_action(name: str, action: str) -> Any:
    ops = operations()
    ops.set_queue_paused(name, action == "pause", g.user.email)
    return jsonify(next(q for q in ops.queues() if q["name"] == name))


@bp.get("/workers")
@api_viewer_required
def workers() -> Any:
    return jsonify(operations().workers())


@bp.get("/failed")
@api_viewer_required
def failed() -> Any:
    return jsonify(operations().failed(request.args.get("type") or None))


@bp.post("/failed/<job_id>/retry")
@api_admin_required
def retry_one(job_id: str) -> Any:
    return jsonify(operations().retry_failed(job_id, g.user.email))


@bp.post("/failed/<job_id>/discard")
@api_admin_required
def discard_one(job_id: str) -> Any:
    return jsonify(operations().discard_failed(job_id, g.user.email))


@bp.post("/failed/retry")
@api_admin_required
def retry_of_type() -> Any:
    return jsonify({"count": operations().retry_failed_of_type(_type_from_body(), g.user.email)})


@bp.post("/failed/discard")
@api_admin_required
def discard_of_type() -> Any:
    return jsonify({"count": operations().discard_failed_of_type(_type_from_body(), g.user.email)})


@bp.get("/recurring")
@api_viewer_required
def recurring() -> Any:
    return jsonify(recurring_tasks().list())


@bp.post("/recurring/<name>/<any(pause, resume, run):action>")
@api_admin_required
def recurring_action(name: str, action: str) -> Any:
    """Beyond the contract: pause, resume or run a recurring task now (the console's actions)."""
    return jsonify(apply_recurring_action(name, action, g.user.email))


def apply_recurring_action(name: str, action: str, actor: str) -> dict[str, Any]:
    """Pause/resume/run-now one recurring task and audit it; NotFound for an unknown name."""
    tasks = recurring_tasks()
    if action == "run":
        task_id = tasks.run_now(name)
        operations().record(actor, "recurring.run", name, {"task_id": task_id})
        return {"name": name, "task_id": task_id}
    entry = tasks.set_paused(name, action == "pause")
    operations().record(actor, f"recurring.{action}", name)
    return entry
