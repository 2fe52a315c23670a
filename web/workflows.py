"""Workflows over HTTP (contract §8): ``/api/workflows`` (bearer token, like ``/api/jobs``) and the page
``/workflows/<id>`` with its state for the page's script (session, like the job pages)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, g, jsonify, render_template
from pydantic import ValidationError

from shared.errors import NotFound
from shared.jobs import validation_fields
from shared.workflows.plan import WorkflowSpec, levels
from shared.workflows.service import Workflows
from web.api import _json_body
from web.auth import api_error, api_user_required, login_required
from web.services import services

bp = Blueprint("workflows", __name__)


def workflows() -> Workflows:
    """This app's workflow service (the composition root's)."""
    return services().workflows


@bp.post("/api/workflows")
@api_user_required
def create_workflow() -> Any:
    body = _json_body()
    if not isinstance(body, dict):
        return api_error(
            422, "invalid", "The body must be a JSON object.", fields={"__root__": "not an object"}
        )
    try:
        spec = WorkflowSpec.model_validate(body)
    except ValidationError as exc:
        return api_error(
            422, "invalid", "Invalid workflow; nothing was created.", fields=validation_fields(exc)
        )
    return jsonify(workflows().create(g.user, spec)), 202


@bp.get("/api/workflows/<workflow_id>")
@api_user_required
def get_workflow(workflow_id: str) -> Any:
    return jsonify(workflows().get(g.user, workflow_id))


@bp.post("/api/workflows/<workflow_id>/cancel")
@api_user_required
def cancel_workflow(workflow_id: str) -> Any:
    return jsonify(workflows().cancel(g.user, workflow_id)), 202


def _visible_or_404(workflow_id: str) -> dict[str, Any]:
    try:
        return workflows().get(g.user, workflow_id)
    except NotFound:
        abort(404)


@bp.get("/workflows/<workflow_id>")
@login_required
def workflow_page(workflow_id: str) -> Any:
    """The steps by dependency level (level 0 runs first), each with the steps it runs after."""
    workflow = _visible_or_404(workflow_id)
    depth = levels({s["key"]: s["after"] for s in workflow["steps"]})
    rows: list[list[dict[str, Any]]] = [[] for _ in range(1 + max(depth.values(), default=0))]
    for step in workflow["steps"]:
        rows[depth[step["key"]]].append(step)
    return render_template("workflow.html", workflow=workflow, levels=rows)


@bp.get("/workflows/<workflow_id>/state")
@login_required
def workflow_state(workflow_id: str) -> Any:
    """The workflow object for the page's script (the page's session; the API takes tokens)."""
    return jsonify(_visible_or_404(workflow_id))
