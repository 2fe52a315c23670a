"""The JSON API (contract §3). Every error is ``{"error": {"code", "message", "fields"?}}``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, g, jsonify, render_template, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from werkzeug.exceptions import HTTPException

from shared import defaults
from shared.errors import LimitReached, ServiceError
from shared.jobs import decode_cursor, validation_fields
from shared.jobtypes import QUEUES
from shared.states import Status
from web.auth import api_error, api_user_required
from web.openapi import build_spec
from web.services import services

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_DELAY_S = 366 * 24 * 3600


def in_utc(value: datetime) -> datetime:
    """``value`` in UTC (a time without a zone is taken as UTC); ValueError if that is not in years 1-9999."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("out of range once converted to UTC") from exc


class SubmitJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] | None = None
    queue: str | None = Field(None, json_schema_extra={"enum": list(QUEUES)})
    delay_seconds: float | None = Field(None, ge=0, le=MAX_DELAY_S)
    run_at: datetime | None = None
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)

    @field_validator("run_at")
    @classmethod
    def _run_at_in_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else in_utc(value)


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Status | None = None
    type: str | None = Field(None, max_length=100)
    limit: int = Field(defaults.LIST_LIMIT_DEFAULT, ge=1, le=defaults.LIST_LIMIT_MAX)
    cursor: str | None = Field(None, max_length=500)

    @field_validator("cursor")
    @classmethod
    def _cursor_of_a_page(cls, value: str | None) -> str | None:
        """Our cursors carry a UTC time: a forged one without a zone is refused here, not a 500 later."""
        if value is not None:
            created, _ = decode_cursor(value)  # InvalidRequest (422) for garbage
            if created.tzinfo is None:
                raise ValueError("not a cursor from a previous page")
            in_utc(created)
        return value


def _json_body() -> Any:
    """The parsed JSON body; a 400 for anything that is not JSON."""
    data = request.get_json(silent=True, force=True)
    if data is None:
        raise ServiceError("The request body must be valid JSON.")
    return data


@bp.post("/jobs")
@api_user_required
def submit_job() -> Any:
    body = _json_body()
    if not isinstance(body, dict):
        return api_error(
            422, "invalid", "The body must be a JSON object.", fields={"__root__": "not an object"}
        )
    try:
        req = SubmitJob.model_validate(body)
    except ValidationError as exc:
        return api_error(422, "invalid", "Invalid request.", fields=validation_fields(exc))
    job, created = services().jobs.submit(
        g.user,
        req.type,
        req.params,
        queue=req.queue,
        delay_seconds=req.delay_seconds,
        run_at=req.run_at,
        idempotency_key=req.idempotency_key,
    )
    return jsonify(job), 202 if created else 200


@bp.get("/jobs")
@api_user_required
def list_jobs() -> Any:
    try:
        q = ListQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        return api_error(422, "invalid", "Invalid query.", fields=validation_fields(exc))
    jobs, cursor = services().jobs.list(
        g.user, q.status.value if q.status else None, q.type, q.limit, q.cursor
    )
    return jsonify({"jobs": jobs, "next_cursor": cursor})


@bp.get("/jobs/<job_id>")
@api_user_required
def get_job(job_id: str) -> Any:
    return jsonify(services().jobs.get(g.user, job_id))


@bp.post("/jobs/<job_id>/cancel")
@api_user_required
def cancel_job(job_id: str) -> Any:
    return jsonify(services().jobs.cancel(g.user, job_id)), 202


@bp.get("/jobs/<job_id>/events")
@api_user_required
def job_events(job_id: str) -> Any:
    return jsonify(services().jobs.events(g.user, job_id))


@bp.get("/job-types")
@api_user_required
def job_types() -> Any:
    return jsonify([spec.describe() for spec in services().registry.values()])


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(build_spec(services().registry))


PAGE_ERRORS = {
    403: ("Not for you", "This page is for operators. Ask an admin if you need access."),
    404: ("Not found", "There is nothing here for you."),
    405: ("Not allowed", "This page does not answer that kind of request."),
    500: ("Something broke", "The server failed to answer. It has been logged; please try again."),
}


def register_error_handlers(app: Flask) -> None:
    """JSON errors under /api; pages keep Flask's HTML errors."""

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Any:
        response = jsonify(exc.to_dict())
        response.status_code = exc.http_status
        if isinstance(exc, LimitReached):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not request.path.startswith("/api/"):
            if exc.code in PAGE_ERRORS:
                title, text = PAGE_ERRORS[exc.code]
                return render_template("error.html", code=exc.code, title=title, text=text), exc.code
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return api_error(exc.code or 500, code, exc.description or exc.name)
