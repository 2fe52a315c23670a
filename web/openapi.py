"""The OpenAPI 3 description served at /api/openapi.json, built from the same pydantic models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.jobtypes import QUEUES, JobType
from shared.states import Status

_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "type",
        "status",
        "progress",
        "message",
        "queue",
        "attempts",
        "max_attempts",
        "params",
        "result",
        "error",
        "created_at",
        "scheduled_at",
        "started_at",
        "finished_at",
    ],
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string"},
        "status": {"type": "string", "enum": [s.value for s in Status]},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "message": {"type": "string"},
        "queue": {"type": "string", "enum": list(QUEUES)},
        "attempts": {"type": "integer", "minimum": 0},
        "max_attempts": {"type": "integer", "minimum": 1},
        "params": {"type": "object"},
        "result": {},
        "error": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["type", "message"],
                    "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
                },
            ]
        },
        "created_at": {"type": "string", "format": "date-time"},
        "scheduled_at": _NULLABLE_TIME,
        "started_at": _NULLABLE_TIME,
        "finished_at": _NULLABLE_TIME,
    },
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}

EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "status", "progress", "message", "created_at"],
    "properties": {
        "id": {"type": "integer"},
        "status": {"type": "string", "enum": [s.value for s in Status]},
        "progress": {"type": "integer"},
        "message": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed JSON",
        401: "No valid token",
        403: "Not allowed",
        404: "Not found",
        409: "Conflict",
        422: "Invalid input",
        429: "Too many active jobs",
    }
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


def build_spec(registry: Mapping[str, JobType]) -> dict[str, Any]:
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    submit_schema = {
        "type": "object",
        "required": ["type"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "enum": sorted(registry)},
            "params": {"type": "object"},
            "queue": {"type": "string", "enum": list(QUEUES)},
            "delay_seconds": {"type": "number", "minimum": 0, "maximum": 366 * 24 * 3600},
            "run_at": {"type": "string", "format": "date-time"},
            "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Questboard API", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Job": JOB_SCHEMA, "Error": ERROR_SCHEMA, "Event": EVENT_SCHEMA},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {"security": [], "responses": {"200": {"description": "alive"}}}},
            "/readyz": {
                "get": {
                    "security": [],
                    "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
                }
            },
            "/api/job-types": {
                "get": {
                    "responses": {
                        "200": _json({"type": "array", "items": {"type": "object"}}, "Job types"),
                        **_errors(401),
                    }
                }
            },
            "/api/jobs": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": submit_schema}},
                    },
                    "responses": {
                        "202": _json(_ref("Job"), "Created"),
                        "200": _json(_ref("Job"), "Existing job with the same idempotency key"),
                        **_errors(400, 401, 422, 429),
                    },
                },
                "get": {
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"type": "string", "enum": [s.value for s in Status]},
                        },
                        {"name": "type", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                        },
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["jobs", "next_cursor"],
                                "properties": {
                                    "jobs": {"type": "array", "items": _ref("Job")},
                                    "next_cursor": {"type": ["string", "null"]},
                                },
                            },
                            "Jobs, newest first",
                        ),
                        **_errors(401, 422),
                    },
                },
            },
            "/api/jobs/{job_id}": {
                "get": {
                    "parameters": [job_id],
                    "responses": {"200": _json(_ref("Job"), "The job"), **_errors(401, 404)},
                }
            },
            "/api/jobs/{job_id}/cancel": {
                "post": {
                    "parameters": [job_id],
                    "responses": {
                        "202": _json(_ref("Job"), "Canceled or cancel requested"),
                        **_errors(401, 404, 409),
                    },
                }
            },
            "/api/jobs/{job_id}/events": {
                "get": {
                    "parameters": [job_id],
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("Event")}, "Events, oldest first"),
                        **_errors(401, 404),
                    },
                }
            },
        },
    }
