"""The API's bodies as pydantic models; ``components.schemas`` of /api/openapi.json is generated from them.

They describe what ``shared.serialize``, ``shared.admin`` and the views return (the job object and the job
browser's models are in ``web.openapi_models``); the security suite's schemathesis run checks every
response against them, so a change of shape fails there first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt
from pydantic.json_schema import models_json_schema

from shared.jobtypes import QUEUES
from shared.states import Status
from web import openapi_models as browser
from web.openapi_models import REF_TEMPLATE, Job

STATUSES = [s.value for s in Status]
QUEUE_NAME = Field(json_schema_extra={"enum": list(QUEUES)})
Counts = dict[str, NonNegativeInt]


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=name)}


class Open(BaseModel):
    """A body that may carry more keys than described."""

    model_config = ConfigDict(extra="allow")


class ErrorDetail(Open):
    code: str
    message: str
    fields: dict[str, str] | None = None


class Error(Open):
    """Every error: ``{"error": {"code", "message", "fields"?}}``."""

    error: ErrorDetail


class Event(Open):
    id: int
    status: Status
    progress: int
    message: str
    created_at: datetime


class JobList(Open):
    jobs: list[Job]
    next_cursor: str | None


class JobType(Open):
    type: str
    queue: str = QUEUE_NAME
    description: str
    params_schema: dict[str, Any] = Field(description="JSON Schema of the type's params.")
    retry: dict[str, Any] | None = None
    unique: bool | None = None
    concurrency_limit: int | None = None
    rate_limit: str | None = None
    internal: bool | None = Field(None, description="Submitted by the system; listed for admins only.")
    time_limit_seconds: int | None = Field(None, description="Seconds one attempt may run.")


class SearchResult(Open):
    kind: Literal["character"]
    id: str
    name: str
    snippet: str


class SearchResults(Open):
    results: list[SearchResult]


class WebhookReceipt(Open):
    delivery_id: str
    job_id: str | None


class Health(Open):
    status: Literal["ok"]


class SupervisedRole(Open):
    """A role `questboard up` supervises (its state as the supervisor last published it)."""

    supervisor: str = Field(description="host:pid of the `questboard up` running it")
    name: str = Field(description="web, worker <queues>, beat, flower, redis")
    state: Literal["running", "restarting", "gave-up", "stopped"]
    pid: int | None
    restarts: NonNegativeInt
    last_exit_code: int | None = Field(description="negative: killed by that signal")
    last_exit: str | None = None
    last_exit_at: datetime | None = None
    since: datetime | None = None
    restart_in_s: float | None = None


class Readiness(Open):
    status: Literal["ok", "unavailable"]
    roles: list[SupervisedRole] | None = Field(
        None, description="Detail: the roles `questboard up` supervises (empty when none does)"
    )
    failed: list[Literal["database", "redis", "workers"]] | None = None
    checks: dict[str, str] = Field(description='Each of database, redis, workers: "ok" or what is wrong.')


class Stats(Open):
    by_status: Counts
    by_type: dict[str, Counts]


class Queue(Open):
    name: str = QUEUE_NAME
    depth: NonNegativeInt
    latency_seconds: float = Field(ge=0)
    paused: bool
    workers: list[str]


class Worker(Open):
    name: str
    queues: list[str]
    concurrency: int = Field(ge=1)
    current_jobs: list[str]
    last_heartbeat: datetime


class Attempt(Open):
    """One attempt as the dead-letter list shows it."""

    number: int = Field(ge=1)
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str | None
    error_type: str | None
    error_message: str | None
    traceback: str | None


class FailedJob(Job):
    attempts_history: list[Attempt]


class RecurringTask(Open):
    name: str
    schedule: str = Field(description='A crontab line or "every 10 min".')
    last_run_at: datetime | None
    next_run_at: datetime | None
    paused: bool
    task: str | None = None
    args: list[Any] | None = None


class RecurringRun(Open):
    name: str
    task_id: str


class Count(Open):
    count: NonNegativeInt


class JobTypeBody(BaseModel):
    """``{"type": T}``: every dead-letter job of that type."""

    type: str = Field(min_length=1)


MODELS: tuple[type[BaseModel], ...] = (
    Error,
    Event,
    JobList,
    JobType,
    SearchResults,
    WebhookReceipt,
    Health,
    Readiness,
    Stats,
    Queue,
    Worker,
    FailedJob,
    RecurringTask,
    RecurringRun,
    Count,
    JobTypeBody,
)


def components() -> dict[str, Any]:
    """``components.schemas``: these models, the job browser's, and every model they use."""
    pairs = [(m, "serialization") for m in MODELS + browser.RESPONSE_MODELS]
    pairs += [(m, "validation") for m in browser.REQUEST_MODELS]
    _, top = models_json_schema(pairs, ref_template=REF_TEMPLATE)  # type: ignore[arg-type]
    return dict(top.get("$defs", {}))


COMPONENTS: dict[str, Any] = components()
