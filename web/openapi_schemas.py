"""JSON Schemas of the API's bodies (``components.schemas`` of /api/openapi.json), one constant each.

They describe what ``shared.serialize``, ``shared.admin`` and the views return; the security suite's
schemathesis run checks every response against them, so a change of shape fails there first.
"""

from __future__ import annotations

from typing import Any

from shared.jobtypes import QUEUES
from shared.states import Status

STATUSES = [s.value for s in Status]
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
NULLABLE_TEXT = {"type": ["string", "null"]}
COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


JOB_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string"},
    "type": {"type": "string"},
    "status": {"type": "string", "enum": STATUSES},
    "progress": {"type": "integer", "minimum": 0, "maximum": 100},
    "message": {"type": "string"},
    "queue": {"type": "string", "enum": list(QUEUES)},
    "attempts": {"type": "integer", "minimum": 0},
    "max_attempts": {"type": "integer", "minimum": 1},
    "params": {"type": "object"},
    "result": {"description": "Whatever the job type returns (JSON), null until it succeeds."},
    "error": {
        "oneOf": [
            {"type": "null"},
            _object(["type", "message"], {"type": {"type": "string"}, "message": {"type": "string"}}),
        ]
    },
    "created_at": TIME,
    "scheduled_at": NULLABLE_TIME,
    "started_at": NULLABLE_TIME,
    "finished_at": NULLABLE_TIME,
}
JOB = _object(list(JOB_PROPERTIES), JOB_PROPERTIES)

ERROR = _object(
    ["error"],
    {
        "error": _object(
            ["code", "message"],
            {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        )
    },
)

EVENT = _object(
    ["id", "status", "progress", "message", "created_at"],
    {
        "id": {"type": "integer"},
        "status": {"type": "string", "enum": STATUSES},
        "progress": {"type": "integer"},
        "message": {"type": "string"},
        "created_at": TIME,
    },
)

JOB_LIST = _object(
    ["jobs", "next_cursor"],
    {"jobs": {"type": "array", "items": ref("Job")}, "next_cursor": NULLABLE_TEXT},
)

JOB_TYPE = _object(
    ["type", "queue", "description", "params_schema"],
    {
        "type": {"type": "string"},
        "queue": {"type": "string", "enum": list(QUEUES)},
        "description": {"type": "string"},
        "params_schema": {"type": "object", "description": "JSON Schema of the type's params."},
        "retry": {"type": "object"},
        "unique": {"type": "boolean"},
        "concurrency_limit": {"type": ["integer", "null"]},
        "rate_limit": NULLABLE_TEXT,
        "internal": {"type": "boolean", "description": "Submitted by the system; listed for admins only."},
        "time_limit_seconds": {"type": "integer", "description": "Seconds one attempt may run."},
    },
)

SEARCH_RESULTS = _object(
    ["results"],
    {
        "results": {
            "type": "array",
            "items": _object(
                ["kind", "id", "name", "snippet"],
                {
                    "kind": {"type": "string", "enum": ["character"]},
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "snippet": {"type": "string"},
                },
            ),
        }
    },
)

WEBHOOK_RECEIPT = _object(
    ["delivery_id", "job_id"], {"delivery_id": {"type": "string"}, "job_id": NULLABLE_TEXT}
)

HEALTH = _object(["status"], {"status": {"type": "string", "enum": ["ok"]}})

SUPERVISED_ROLE = _object(
    ["supervisor", "name", "state", "pid", "restarts", "last_exit_code"],
    {
        "supervisor": {"type": "string", "description": "host:pid of the `questboard up` running it"},
        "name": {"type": "string", "description": "web, worker <queues>, beat, flower, redis"},
        "state": {"type": "string", "enum": ["running", "restarting", "gave-up", "stopped"]},
        "pid": {"type": ["integer", "null"]},
        "restarts": {"type": "integer", "minimum": 0},
        "last_exit_code": {"type": ["integer", "null"], "description": "negative: killed by that signal"},
        "last_exit": NULLABLE_TEXT,
        "last_exit_at": NULLABLE_TIME,
        "since": NULLABLE_TIME,
        "restart_in_s": {"type": "number", "minimum": 0},
    },
)

READINESS = _object(
    ["status", "checks"],
    {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "roles": {
            "type": "array",
            "items": SUPERVISED_ROLE,
            "description": "Detail: the roles `questboard up` supervises (empty when none does)",
        },
        "failed": {"type": "array", "items": {"type": "string", "enum": ["database", "redis", "workers"]}},
        "checks": {
            "type": "object",
            "required": ["database", "redis", "workers"],
            "additionalProperties": {"type": "string", "description": '"ok" or what is wrong'},
        },
    },
)

# ----- admin API ---------------------------------------------------------------------------------

STATS = _object(
    ["by_status", "by_type"],
    {"by_status": COUNTS, "by_type": {"type": "object", "additionalProperties": COUNTS}},
)

QUEUE = _object(
    ["name", "depth", "latency_seconds", "paused", "workers"],
    {
        "name": {"type": "string", "enum": list(QUEUES)},
        "depth": {"type": "integer", "minimum": 0},
        "latency_seconds": {"type": "number", "minimum": 0},
        "paused": {"type": "boolean"},
        "workers": {"type": "array", "items": {"type": "string"}},
    },
)

WORKER = _object(
    ["name", "queues", "concurrency", "current_jobs", "last_heartbeat"],
    {
        "name": {"type": "string"},
        "queues": {"type": "array", "items": {"type": "string"}},
        "concurrency": {"type": "integer", "minimum": 1},
        "current_jobs": {"type": "array", "items": {"type": "string"}},
        "last_heartbeat": TIME,
    },
)

ATTEMPT = _object(
    ["number", "worker", "started_at", "finished_at", "outcome", "error_type", "error_message", "traceback"],
    {
        "number": {"type": "integer", "minimum": 1},
        "worker": NULLABLE_TEXT,
        "started_at": NULLABLE_TIME,
        "finished_at": NULLABLE_TIME,
        "outcome": NULLABLE_TEXT,
        "error_type": NULLABLE_TEXT,
        "error_message": NULLABLE_TEXT,
        "traceback": NULLABLE_TEXT,
    },
)

FAILED_JOB = {
    "allOf": [
        ref("Job"),
        _object(["attempts_history"], {"attempts_history": {"type": "array", "items": ref("Attempt")}}),
    ]
}

RECURRING_TASK = _object(
    ["name", "schedule", "last_run_at", "next_run_at", "paused"],
    {
        "name": {"type": "string"},
        "schedule": {"type": "string", "description": 'A crontab line or "every 10 min".'},
        "last_run_at": NULLABLE_TIME,
        "next_run_at": NULLABLE_TIME,
        "paused": {"type": "boolean"},
        "task": {"type": "string"},
        "args": {"type": "array"},
    },
)

RECURRING_RUN = _object(["name", "task_id"], {"name": {"type": "string"}, "task_id": {"type": "string"}})

COUNT = _object(["count"], {"count": {"type": "integer", "minimum": 0}})

COMPONENTS: dict[str, Any] = {
    "Job": JOB,
    "Error": ERROR,
    "Event": EVENT,
    "JobList": JOB_LIST,
    "JobType": JOB_TYPE,
    "SearchResults": SEARCH_RESULTS,
    "WebhookReceipt": WEBHOOK_RECEIPT,
    "Health": HEALTH,
    "Readiness": READINESS,
    "Stats": STATS,
    "Queue": QUEUE,
    "Worker": WORKER,
    "Attempt": ATTEMPT,
    "FailedJob": FAILED_JOB,
    "RecurringTask": RECURRING_TASK,
    "RecurringRun": RECURRING_RUN,
    "Count": COUNT,
}
