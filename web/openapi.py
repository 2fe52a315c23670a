"""The OpenAPI 3.1 description served at /api/openapi.json: every JSON endpoint, its inputs and every answer.

Bodies and query parameters come from pydantic models (``web.openapi_schemas``, ``web.openapi_models``,
the views' own request models) through the small helpers below. Bearer auth is the default;
``security: []`` marks the endpoints that need none (health, the spec itself, webhooks, which are signed
instead). A test checks that every url rule under /api, /webhooks, /healthz, /readyz and /metrics is
described here, and the security suite fuzzes the live server against it with schemathesis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.jobtypes import QUEUES, JobType
from web import openapi_models as models
from web.openapi_schemas import COMPONENTS, ref

ERROR_TEXT = {
    400: "The body is not valid JSON.",
    401: "No valid bearer token (webhooks: a missing or bad signature, or a stale timestamp).",
    403: "The token is not an operator's (admins; reads also allow viewers); for a submit: a `queue` above "
    "the type's own (admins only).",
    404: "No such thing, or it belongs to someone else (its existence is not revealed).",
    409: "Not possible in the job's current state.",
    422: "Invalid input; `fields` names what is wrong.",
    413: "The body is larger than the server takes (16 MiB).",
    429: "Too many active (or waiting) jobs; try again after `Retry-After` seconds.",
    503: "The database or Redis is not answering; try again after `Retry-After` seconds.",
}
WEBHOOK_400 = (
    "A malformed X-Questboard-Timestamp (answered before anything else), a signed body that is not JSON "
    "within limits, or an X-Questboard-Delivery header that differs from the signed delivery id."
)
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
# Ids and names in paths, as the server issues them (job ids are 32 hex digits).
NAME = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _array(name: str) -> dict[str, Any]:
    return {"type": "array", "items": ref(name)}


def _in_path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": NAME, "description": description}


def _in_query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


JOB_ID = _in_path("job_id", "A job id.")


def _op(
    summary: str,
    answers: dict[str, Any],
    errors: tuple[int, ...],
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    public: bool = False,
) -> dict[str, Any]:
    """One operation: ``answers`` maps success codes to responses; ``public`` ones need no token."""
    responses = dict(answers)
    for code in errors:
        responses[str(code)] = _json(ref("Error"), ERROR_TEXT[code])
        if code in (429, 503):
            responses[str(code)]["headers"] = RETRY_AFTER
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
        responses["413"] = _json(ref("Error"), ERROR_TEXT[413])
    if public:
        op["security"] = []
    return op


def _submit_schema(registry: Mapping[str, JobType]) -> dict[str, Any]:
    """The body of ``POST /api/jobs``: the model the view validates with, the type enum from ``registry``."""
    from web.api import SubmitJob

    schema = SubmitJob.model_json_schema(ref_template=models.REF_TEMPLATE)
    schema["properties"]["type"] = {
        "type": "string",
        "enum": sorted(name for name, spec in registry.items() if not spec.internal),
        "description": "A user type of /api/job-types (admins may also name internal types).",
    }
    schema["properties"]["params"]["description"] = "Checked against the type's params_schema."
    return schema


CSV_BODY = {
    "required": True,
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
    },
}
EXPORT_FILE = {
    "description": "The file, as an attachment",
    "content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {}}},
}


def _list_params() -> list[dict[str, Any]]:
    """The filters of ``GET /api/jobs``, from the model the view validates them with."""
    from web.api import ListQuery

    return models.query_params(ListQuery)


def _jobs_paths(registry: Mapping[str, JobType]) -> dict[str, Any]:
    job = {"200": _json(ref("Job"), "The job")}
    return {
        "/api/job-types": {
            "get": _op(
                "The job types this installation runs", {"200": _json(_array("JobType"), "Types")}, (401,)
            )
        },
        "/api/jobs": {
            "post": _op(
                "Submit a job",
                {
                    "202": _json(ref("Job"), "Accepted: the new job"),
                    "200": _json(
                        ref("Job"),
                        "The job holding this idempotency (or unique) key, or the debounced job it moved",
                    ),
                },
                (400, 401, 403, 422, 429, 503),
                body=_json_body(_submit_schema(registry)),
            ),
            "get": _op(
                "Your jobs, newest first (admins: everyone's)",
                {"200": _json(ref("JobList"), "A page of jobs")},
                (401, 422),
                params=_list_params(),
            ),
        },
        "/api/jobs/{job_id}": {"get": _op("One job", job, (401, 404), params=[JOB_ID])},
        "/api/jobs/{job_id}/cancel": {
            "post": _op(
                "Cancel a job: at once if it has not started, within 5 s if it runs",
                {"202": _json(ref("Job"), "Canceled, or cancel requested")},
                (401, 404, 409),
                params=[JOB_ID],
            )
        },
        "/api/jobs/{job_id}/events": {
            "get": _op(
                "The job's progress events, oldest first (kept one day)",
                {"200": _json(_array("Event"), "Events")},
                (401, 404),
                params=[JOB_ID],
            )
        },
        "/api/jobs/{job_id}/download": {
            "get": _op(
                "The file a finished export job wrote", {"200": EXPORT_FILE}, (401, 404), params=[JOB_ID]
            )
        },
        "/api/imports": {
            "post": _op(
                "Import characters from a CSV (the body, or a form's `file`): a workflow of one step per row",
                {"202": _json(ref("Workflow"), "The import's workflow (its last step mails a summary)")},
                (401, 422, 429),
                body=CSV_BODY,
            )
        },
        "/api/search": {
            "get": _op(
                "Full-text search over your characters (admins: everyone's)",
                {"200": _json(ref("SearchResults"), "Matches, best first")},
                (401,),
                params=[
                    _in_query("q", {"type": "string"}, "Words; each matches as a prefix."),
                    _in_query(
                        "limit", {"type": "integer"}, "At most this many (clamped to 1-50; default 20)."
                    ),
                ],
            ),
        },
    }


def _admin_paths() -> dict[str, Any]:
    reads = {
        "stats": ("Job counts by status and by type", ref("Stats"), []),
        "queues": ("Every queue", _array("Queue"), []),
        "workers": ("Live workers", _array("Worker"), []),
        "failed": (
            "The dead-letter set, newest first, with every attempt's error",
            _array("FailedJob"),
            [_in_query("type", {"type": "string"}, "Only jobs of this type.")],
        ),
        "recurring": ("Recurring tasks", _array("RecurringTask"), []),
    }
    paths: dict[str, Any] = {
        f"/api/admin/{name}": {"get": _op(summary, {"200": _json(schema, "OK")}, (401, 403), params=params)}
        for name, (summary, schema, params) in reads.items()
    }
    queue = [_in_path("name", "A queue: " + ", ".join(QUEUES) + ".")]
    task = [_in_path("name", "A recurring task's name.")]
    type_body = _json_body(ref("JobTypeBody"))
    for action in ("pause", "resume"):
        paths[f"/api/admin/queues/{{name}}/{action}"] = {
            "post": _op(
                f"{action.capitalize()} a queue (survives worker restarts; audited)",
                {"200": _json(ref("Queue"), "The queue now")},
                (401, 403, 404),
                params=queue,
            )
        }
        paths[f"/api/admin/recurring/{{name}}/{action}"] = {
            "post": _op(
                f"{action.capitalize()} a recurring task (audited)",
                {"200": _json(ref("RecurringTask"), "The task now")},
                (401, 403, 404),
                params=task,
            )
        }
    paths["/api/admin/recurring/{name}/run"] = {
        "post": _op(
            "Run a recurring task now; its schedule is unchanged (audited)",
            {"200": _json(ref("RecurringRun"), "Sent")},
            (401, 403, 404),
            params=task,
        )
    }
    for action, done in (("retry", "queued again with a fresh budget of attempts"), ("discard", "discarded")):
        paths[f"/api/admin/failed/{{job_id}}/{action}"] = {
            "post": _op(
                f"One dead-letter job: {done} (audited)",
                {"200": _json(ref("Job"), "The job")},
                (401, 403, 404, 409),
                params=[JOB_ID],
            )
        }
        paths[f"/api/admin/failed/{action}"] = {
            "post": _op(
                f"Every dead-letter job of a type: {done} (audited)",
                {"200": _json(ref("Count"), "How many")},
                (400, 401, 403, 422),
                body=type_body,
            )
        }
    return paths


def _browser_paths() -> dict[str, Any]:
    """The job browser's routes, described from their pydantic models (``web.openapi_models``)."""
    paths: dict[str, Any] = {
        "/api/jobs/{job_id}/attempts": {
            "get": _op(
                "Every attempt of a job, oldest first (owner, admins and viewers)",
                {"200": _json({"type": "array", "items": models.ref(models.JobAttempt)}, "Attempts")},
                (401, 404),
                params=[JOB_ID],
            )
        },
        "/api/admin/jobs": {
            "get": _op(
                "Every user's jobs, newest first, filtered (admins and viewers)",
                {"200": _json(models.ref(models.AdminJobList), "A page of jobs")},
                (401, 403, 422),
                params=models.browser_query_params(),
            )
        },
    }
    for action, does in (
        ("cancel", "cancel every selected unfinished job"),
        ("retry", "retry every selected failed job"),
        ("discard", "discard every selected failed job"),
    ):
        paths[f"/api/admin/jobs/{action}"] = {
            "post": _op(
                f"Bulk: {does}; the others are left alone and not counted (audited once)",
                {"200": _json(ref("Count"), "How many were changed")},
                (400, 401, 403, 422),
                body=models.json_body(models.BulkRequest),
            )
        }
    return paths


def _header(name: str, required: bool, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required, "schema": schema, "description": description}


WEBHOOK_PARAMS = [
    _in_path("source", "The sender, as named in QUESTBOARD_WEBHOOK_SECRETS."),
    _header(
        "X-Questboard-Timestamp",
        True,
        {"type": "string", "pattern": "^[0-9]{1,12}$"},
        "Unix seconds; more than 300 s away from the server's clock is refused.",
    ),
    _header(
        "X-Questboard-Signature",
        True,
        {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
        'sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>" with the source\'s secret>',
    ),
    _header(
        "X-Questboard-Delivery",
        False,
        {"type": "string", "minLength": 1, "maxLength": 200},
        "Optional, not signed: if sent, it must equal the delivery id, which is the signed body's `id` "
        "(else the SHA-256 hex of the body); a repeated delivery id is answered, not processed again.",
    ),
]


def _public_paths() -> dict[str, Any]:
    metrics = {
        "description": "Prometheus text format 0.0.4",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    return {
        "/healthz": {"get": _op("Liveness", {"200": _json(ref("Health"), "Alive")}, (), public=True)},
        "/readyz": {
            "get": _op(
                "Readiness: database and Redis answer, a worker was seen in the last 30 s",
                {
                    "200": _json(ref("Readiness"), "Ready"),
                    "503": _json(ref("Readiness"), "Not ready; `failed` names the checks"),
                },
                (),
                public=True,
            )
        },
        "/metrics": {"get": _op("Prometheus metrics (admin or viewer token)", {"200": metrics}, (401, 403))},
        "/api/openapi.json": {
            "get": _op("This description", {"200": _json({"type": "object"}, "OpenAPI 3.1")}, (), public=True)
        },
        "/webhooks/{source}": {
            "post": _op(
                "A signed delivery from a source configured in QUESTBOARD_WEBHOOK_SECRETS",
                {
                    "202": _json(ref("WebhookReceipt"), "Stored; a webhook.process job acts on it"),
                    "200": _json(ref("WebhookReceipt"), "A repeated delivery id: the first delivery"),
                },
                (400, 401, 404),
                params=WEBHOOK_PARAMS,
                body={"required": True, "content": {"application/json": {"schema": {}}}},
                public=True,
            )
        },
    }


def build_spec(registry: Mapping[str, JobType]) -> dict[str, Any]:
    """The whole description; the job-type enum comes from ``registry``."""
    from web.openapi_workflows import workflow_paths  # built on the helpers above

    public = _public_paths()
    public["/webhooks/{source}"]["post"]["responses"]["400"]["description"] = WEBHOOK_400
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Questboard API",
            "version": "1",
            "description": 'Errors are `{"error": {"code", "message", "fields"?}}`. '
            "Live progress is on Socket.IO (namespace /jobs), not described here.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": COMPONENTS,
        },
        "security": [{"bearer": []}],
        "paths": {
            **public,
            **_jobs_paths(registry),
            **workflow_paths(),
            **_admin_paths(),
            **_browser_paths(),
        },
    }
