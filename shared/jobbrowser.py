"""The operator's browser over every job (contract §3, ``/api/admin/jobs``), its bulk actions, and the
attempt history of one job.

Filters are pydantic models, so the API validates with them and the OpenAPI description is generated from
them. Bulk actions go through the existing paths one job at a time: cancel through ``JobService.cancel``,
retry and discard through the dead-letter set, so a bulk action behaves exactly like the single one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Select, String, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from shared import defaults
from shared.db import get_sessionmaker
from shared.errors import Conflict, InvalidRequest, NotFound
from shared.jobs import decode_cursor, encode_cursor, newest_first
from shared.jobtypes import QUEUES
from shared.models import Job, JobAttempt, User
from shared.serialize import iso, job_to_dict
from shared.states import ACTIVE, Status

BulkAction = Literal["cancel", "retry", "discard"]


def _as_list(value: Any) -> Any:
    """``"a,b"`` (a query string) or ``["a", "b"]`` (a JSON body) as a list without empty items."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, list):
        items = [v.strip() if isinstance(v, str) else v for v in value]
        return [v for v in items if v != ""] or None
    return value


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("out of range once converted to UTC") from exc


class JobFilter(BaseModel):
    """Which jobs: every given condition must hold."""

    model_config = ConfigDict(extra="forbid")

    status: list[Status] | None = Field(
        None, max_length=len(Status), description="Statuses (a comma-separated list in a query string)."
    )
    type: list[str] | None = Field(
        None, max_length=50, description="Job types (a comma-separated list in a query string)."
    )
    queue: str | None = Field(None, json_schema_extra={"enum": list(QUEUES)}, description="One queue.")
    user: str | None = Field(None, min_length=1, max_length=320, description="The owner's email.")
    q: str | None = Field(None, min_length=1, max_length=200, description="Text in params, message or error.")
    since: datetime | None = Field(None, description="created_at at or after this (ISO 8601; no zone: UTC).")
    until: datetime | None = Field(None, description="created_at at or before this (ISO 8601; no zone: UTC).")

    _lists = field_validator("status", "type", mode="before")(_as_list)

    @field_validator("type")
    @classmethod
    def _types_short(cls, value: list[str] | None) -> list[str] | None:
        if value and any(len(t) > 100 for t in value):
            raise ValueError("a job type is at most 100 characters")
        return value

    @field_validator("queue")
    @classmethod
    def _known_queue(cls, value: str | None) -> str | None:
        if value is not None and value not in QUEUES:
            raise ValueError(f"one of {', '.join(QUEUES)}")
        return value

    @field_validator("user", "q", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("since", "until")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> JobFilter:
        if self.since and self.until and self.since > self.until:
            raise ValueError("since is after until")
        return self

    def is_empty(self) -> bool:
        """No condition at all (it would match every job)."""
        return not any(getattr(self, name) is not None for name in type(self).model_fields)

    def selection(self) -> dict[str, Any]:
        """The given conditions as JSON (the audit log's record of what was selected)."""
        return self.model_dump(mode="json", exclude_none=True)


class JobQuery(JobFilter):
    """A page of the browser: the filter plus paging. Query strings carry more keys (ignored)."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(
        defaults.LIST_LIMIT_DEFAULT, ge=1, le=defaults.LIST_LIMIT_MAX, description="Page size."
    )
    cursor: str | None = Field(None, max_length=500, description="`next_cursor` of the previous page.")

    @field_validator("cursor")
    @classmethod
    def _cursor_of_a_page(cls, value: str | None) -> str | None:
        if value is not None:
            decode_cursor(value)  # InvalidRequest (422) for anything we did not issue
        return value

    def filter(self) -> JobFilter:
        return JobFilter.model_validate(self.model_dump(exclude={"limit", "cursor"}))


class BulkRequest(BaseModel):
    """Body of ``POST /api/admin/jobs/<action>``: explicit ids, or every job matching a filter."""

    model_config = ConfigDict(extra="forbid")

    ids: list[str] | None = Field(None, min_length=1, max_length=defaults.BULK_IDS_MAX)
    filter: JobFilter | None = None

    @field_validator("ids")
    @classmethod
    def _ids_short(cls, value: list[str] | None) -> list[str] | None:
        if value and any(not 1 <= len(i) <= 64 for i in value):
            raise ValueError("a job id has 1 to 64 characters")
        return value

    @model_validator(mode="after")
    def _one_selection(self) -> BulkRequest:
        if (self.ids is None) == (self.filter is None):
            raise ValueError('give "ids" or "filter" (one of them)')
        if self.filter is not None and self.filter.is_empty():
            raise ValueError("an empty filter would select every job; give at least one condition")
        return self

    def selection(self) -> dict[str, Any]:
        return {"ids": self.ids} if self.ids is not None else {"filter": self.filter.selection()}  # type: ignore[union-attr]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filtered(stmt: Select[Any], f: JobFilter) -> Select[Any]:
    """``stmt`` over ``jobs`` narrowed by every condition of ``f``."""
    if f.status:
        stmt = stmt.where(Job.status.in_([s.value for s in f.status]))
    if f.type:
        stmt = stmt.where(Job.type.in_(f.type))
    if f.queue:
        stmt = stmt.where(Job.queue == f.queue)
    if f.user:
        owner = select(User.id).where(func.lower(User.email) == f.user.strip().lower()).scalar_subquery()
        stmt = stmt.where(Job.user_id == owner)
    if f.since:
        stmt = stmt.where(Job.created_at >= f.since)
    if f.until:
        stmt = stmt.where(Job.created_at <= f.until)
    if f.q:
        pattern = f"%{_escape_like(f.q.lower())}%"
        stmt = stmt.where(
            or_(
                func.lower(Job.message).like(pattern, escape="\\"),
                func.lower(cast(Job.params, String)).like(pattern, escape="\\"),
                func.lower(cast(Job.error, String)).like(pattern, escape="\\"),
            )
        )
    return stmt


def attempt_to_public(attempt: JobAttempt) -> dict[str, Any]:
    """One attempt as ``GET /api/jobs/<id>/attempts`` shows it (contract §3)."""
    duration = None
    if attempt.finished_at is not None and attempt.started_at is not None:
        duration = max(0, round((attempt.finished_at - attempt.started_at).total_seconds() * 1000))
    error = None
    if attempt.error_type or attempt.error_message or attempt.traceback:
        error = {
            "type": attempt.error_type or "",
            "message": attempt.error_message or "",
            "traceback": attempt.traceback,
        }
    return {
        "number": attempt.number,
        "status": attempt.outcome or "running",
        "worker": attempt.worker,
        "started_at": iso(attempt.started_at),
        "finished_at": iso(attempt.finished_at),
        "duration_ms": duration,
        "error": error,
    }


def may_see(user: User, job: Job) -> bool:
    """Owners see their jobs; admins and viewers see every job."""
    return job.user_id == user.id or bool(user.is_admin or user.is_viewer)


class JobBrowser:
    """Reads for operators (and a job's owner); bulk actions through the existing single-job paths."""

    def __init__(self, database_url: str) -> None:
        self._sessions = get_sessionmaker(database_url)

    def _visible(self, session: Session, user: User, job_id: str) -> Job:
        job = session.get(Job, job_id)
        if job is None or not may_see(user, job):
            raise NotFound("No such job.")
        return job

    def get(self, user: User, job_id: str) -> dict[str, Any]:
        """The job object; NotFound unless ``user`` owns it or is an operator (admin or viewer)."""
        with self._sessions() as session:
            return job_to_dict(self._visible(session, user, job_id))

    def attempts(self, user: User, job_id: str) -> list[dict[str, Any]]:
        """Every attempt of the job, oldest first; NotFound unless ``user`` may see it."""
        with self._sessions() as session:
            self._visible(session, user, job_id)
            rows = session.scalars(
                select(JobAttempt)
                .where(JobAttempt.job_id == job_id)
                .order_by(JobAttempt.number, JobAttempt.id)
            )
            return [attempt_to_public(a) for a in rows]

    def children(self, user: User, job_id: str, limit: int = defaults.LIST_LIMIT_MAX) -> list[dict[str, Any]]:
        """The jobs this one created (follow-ups, fan-out children), oldest first."""
        with self._sessions() as session:
            self._visible(session, user, job_id)
            rows = session.scalars(
                select(Job).where(Job.parent_id == job_id).order_by(Job.created_at, Job.id).limit(limit)
            )
            return [job_to_dict(j) for j in rows if may_see(user, j)]

    def list(self, query: JobQuery) -> tuple[list[dict[str, Any]], str | None]:
        """A page of every user's jobs, newest first, each with its owner's email as ``user``."""
        stmt = filtered(select(Job, User.email).join(User, User.id == Job.user_id), query.filter())
        stmt = newest_first(stmt, query.cursor, query.limit)
        with self._sessions() as session:
            rows = list(session.execute(stmt))
        page = rows[: query.limit]
        next_cursor = encode_cursor(rows[query.limit - 1][0]) if len(rows) > query.limit else None
        return [{**job_to_dict(job), "user": email} for job, email in page], next_cursor

    def count(self, f: JobFilter) -> int:
        """How many jobs match (the browser's "all N matching")."""
        with self._sessions() as session:
            return session.scalar(filtered(select(func.count()).select_from(Job), f)) or 0

    def matching_ids(self, request: BulkRequest, action: BulkAction) -> Iterator[str]:
        """The selected jobs the action applies to (unfinished for cancel, dead letters otherwise)."""
        if action == "cancel":
            wanted = Job.status.in_([s.value for s in ACTIVE])
        else:
            wanted = and_(Job.status == Status.FAILED.value, Job.discarded_at.is_(None))
        stmt = select(Job.id).where(wanted).order_by(Job.created_at, Job.id)
        if request.ids is not None:
            stmt = stmt.where(Job.id.in_(request.ids))
        else:
            stmt = filtered(stmt, request.filter)  # type: ignore[arg-type]
        with self._sessions() as session:
            ids = list(session.scalars(stmt))
        yield from ids


def apply_bulk(
    browser: JobBrowser,
    request: BulkRequest,
    action: BulkAction,
    act_on_one: Any,
) -> int:
    """Apply ``act_on_one(job_id)`` to every selected job it applies to; returns how many it changed.

    A job that moved on meanwhile (``Conflict``/``NotFound`` from the single-job path) is not counted.
    """
    count = 0
    for job_id in browser.matching_ids(request, action):
        try:
            act_on_one(job_id)
        except (Conflict, NotFound):
            continue
        count += 1
    return count


def parse_or_422(model: type[BaseModel], data: Any, what: str = "request") -> Any:
    """``model`` validated from ``data``; InvalidRequest (422) with ``fields`` otherwise."""
    from pydantic import ValidationError

    from shared.jobs import validation_fields

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid {what}.", validation_fields(exc)) from exc
