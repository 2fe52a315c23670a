"""The JSON API (contract §3). Every error is ``{"error": {"code", "message", "fields"?}}``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import redis
from flask import Blueprint, Flask, g, jsonify, render_template, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from werkzeug.exceptions import BadRequest, HTTPException

from shared import defaults
from shared.errors import LimitReached, ServiceError
from shared.jobs import decode_cursor, validation_fields
from shared.jobtypes import QUEUES
from shared.states import Status
from web.auth import api_error, api_user_required
from web.edge import is_json_path
from web.openapi import build_spec
from web.services import services

log = logging.getLogger("questboard.web")

bp = Blueprint("api", __name__, url_prefix="/api")


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
    queue: str | None = Field(
        None,
        json_schema_extra={"enum": list(QUEUES)},
        description="The type's own queue or a lower one; a higher one is for admins (403).",
    )
    delay_seconds: float | None = Field(None, ge=0, le=defaults.MAX_SCHEDULE_AHEAD_S)
    run_at: datetime | None = Field(None, description="Without a zone: UTC. At most 366 days ahead.")
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    debounce_key: str | None = Field(
        None,
        min_length=1,
        max_length=defaults.DEBOUNCE_KEY_MAX_CHARS,
        description="With debounce_seconds: a repeat while the job is scheduled moves it (200 with it).",
    )
    debounce_seconds: float | None = Field(
        None,
        ge=defaults.DEBOUNCE_MIN_S,
        le=defaults.DEBOUNCE_MAX_S,
        description="The job runs this long after the last submit with its debounce_key.",
    )

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
    """The parsed JSON body; a 400 for anything that is not JSON (or nested too deeply, see web.edge)."""
    try:
        data = request.get_json(force=True)
    except BadRequest as exc:
        raise ServiceError(f"The request body must be valid JSON: {exc.description}") from exc
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
        debounce_key=req.debounce_key,
        debounce_seconds=req.debounce_seconds,
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
    """The types the caller may submit: a normal user's list leaves internal types out."""
    specs = services().registry.values()
    return jsonify([spec.describe() for spec in specs if g.user.is_admin or not spec.internal])


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
    """JSON errors under /api, /webhooks, /metrics and the health checks; pages keep Flask's HTML errors."""

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Any:
        response = jsonify(exc.to_dict())
        response.status_code = exc.http_status
        if isinstance(exc, LimitReached):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(SATimeoutError)
    @app.errorhandler(redis.RedisError)
    def _dependency_down(exc: Exception) -> Any:
        """The database or Redis did not answer in time: 503 with Retry-After, never a hang or a 500."""
        which = "Redis" if isinstance(exc, redis.RedisError) else "the database"
        log.warning("dependency unavailable", extra={"path": request.path, "error": repr(exc)[:300]})
        response, status = api_error(503, "unavailable", f"{which} is not answering; try again shortly.")
        response.headers["Retry-After"] = str(defaults.DEPENDENCY_RETRY_AFTER_S)
        return response, status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not is_json_path(request.path):
            if exc.code in PAGE_ERRORS:
                title, text = PAGE_ERRORS[exc.code]
                return render_template("error.html", code=exc.code, title=title, text=text), exc.code
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return api_error(exc.code or 500, code, exc.description or exc.name)
