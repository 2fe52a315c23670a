"""The OpenAPI description of ``/api/workflows`` (contract §8), joined to the rest by ``web.openapi``."""

from __future__ import annotations

from typing import Any

from web.openapi import _in_path, _json, _op
from web.openapi_models import Workflow, WorkflowSpec, json_body, ref

WORKFLOW_ID = _in_path("workflow_id", "A workflow id.")


def workflow_paths() -> dict[str, Any]:
    workflow = _json(ref(Workflow), "The workflow")
    return {
        "/api/workflows": {
            "post": _op(
                "Submit a workflow: steps that run after each other (one transaction; 422 creates nothing)",
                {"202": _json(ref(Workflow), "Accepted: the new workflow")},
                (400, 401, 422, 429, 503),
                body=json_body(WorkflowSpec),
            )
        },
        "/api/workflows/{workflow_id}": {
            "get": _op("One workflow with its steps", {"200": workflow}, (401, 404), params=[WORKFLOW_ID])
        },
        "/api/workflows/{workflow_id}/cancel": {
            "post": _op(
                "Cancel every unfinished step",
                {"202": _json(ref(Workflow), "Canceled (running steps within 5 s)")},
                (401, 404, 409),
                params=[WORKFLOW_ID],
            )
        },
    }
