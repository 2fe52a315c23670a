"""Pydantic models of API bodies and one small builder that turns them into OpenAPI pieces.

The request models are the ones the views validate with (``shared.jobbrowser``), so their description
cannot drift from the code; the response models describe what ``shared.serialize`` and
``shared.jobbrowser`` return, and the schemathesis run checks every answer against them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from shared import waiting
from shared.jobbrowser import BulkRequest, JobQuery
from shared.jobtypes import QUEUES
from shared.states import Status
from shared.workflows.plan import WorkflowSpec

REF_TEMPLATE = "#/components/schemas/{model}"


class JobError(BaseModel):
    type: str
    message: str


class WaitingReason(BaseModel):
    """Why a job that is not running waits (``shared.waiting`` lists the codes)."""

    code: str = Field(json_schema_extra={"enum": list(waiting.CODES)})
    message: str
    until: datetime | None = Field(description="When the wait ends, if known.")


class Job(BaseModel):
    """The job object (contract §3)."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: str
    status: Status
    progress: int = Field(ge=0, le=100)
    message: str
    queue: str = Field(json_schema_extra={"enum": list(QUEUES)})
    attempts: int = Field(ge=0)
    max_attempts: int = Field(ge=1)
    params: dict[str, Any]
    result: Any = Field(description="Whatever the job type returns (JSON), null until it succeeds.")
    error: JobError | None
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    parent_id: str | None = Field(description="The job that created this one, or null.")
    workflow_id: str | None = Field(description="The workflow this job is a step of, or null.")
    debounce_key: str | None = Field(None, description="The debounce_key it was submitted with, or null.")
    waiting_reason: WaitingReason | None = Field(
        None, description="GET /api/jobs/<id> only: why it waits, null when running or finished."
    )


class AdminJob(Job):
    """A job in the operators' browser: with its owner's email."""

    user: str


class AdminJobList(BaseModel):
    jobs: list[AdminJob]
    next_cursor: str | None


class AttemptError(BaseModel):
    type: str
    message: str
    traceback: str | None


class JobAttempt(BaseModel):
    """One run of a job (``GET /api/jobs/<id>/attempts``)."""

    number: int = Field(ge=1)
    status: str = Field(description="succeeded, failed, retrying, … (running while it runs)")
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None = Field(ge=0)
    error: AttemptError | None


class WorkflowStep(BaseModel):
    """One step of a workflow: its job and the keys it runs after."""

    key: str
    job_id: str
    type: str
    status: Status
    after: list[str]


class Workflow(BaseModel):
    """The workflow object (contract §8)."""

    id: str
    name: str | None
    status: Literal["running", "succeeded", "failed", "canceled"]
    created_at: datetime
    finished_at: datetime | None
    steps: list[WorkflowStep]


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (Job, AdminJobList, JobAttempt, Workflow)
REQUEST_MODELS: tuple[type[BaseModel], ...] = (BulkRequest, WorkflowSpec)


def components() -> dict[str, Any]:
    """``components.schemas`` for every model above (and the models they use), keyed by class name."""
    pairs = [(m, "serialization") for m in RESPONSE_MODELS] + [(m, "validation") for m in REQUEST_MODELS]
    _, top = models_json_schema(pairs, ref_template=REF_TEMPLATE)  # type: ignore[arg-type]
    return dict(top.get("$defs", {}))


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema from a model property: no null branch; lists are comma-separated text."""
    schema = dict(schema)
    branches = [b for b in schema.pop("anyOf", []) if b.get("type") != "null"]
    if branches:
        schema = {**branches[0], **schema}
    for key in ("default", "title"):
        schema.pop(key, None)
    if schema.get("type") == "array":
        return {"type": "string", "description": schema.get("description", "A comma-separated list.")}
    return schema


def query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Every field of ``model`` as an optional query parameter."""
    props = model.model_json_schema(ref_template=REF_TEMPLATE)["properties"]
    params = []
    for name, prop in props.items():
        schema = _plain(prop)
        description = schema.pop("description", "")
        params.append(
            {"name": name, "in": "query", "required": False, "schema": schema, "description": description}
        )
    return params


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": ref(model)}}}


def browser_query_params() -> list[dict[str, Any]]:
    """The filters of ``GET /api/admin/jobs``, from the model that validates them."""
    return query_params(JobQuery)
