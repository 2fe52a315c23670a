"""SQLAlchemy 2 models. The ``jobs`` row is the source of truth for every job."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite keeps no zone, PostgreSQL keeps it anyway."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use shared.models.utcnow()")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Read-only operator: sees the console and GET admin endpoints, may change nothing.
    is_viewer: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Bumped inside the submit transaction: taking this row's write lock serialises the per-user limit.
    submit_guard: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex, never the token
    # The token's first characters, enough to tell tokens apart in `questboard users tokens` (not to use).
    prefix: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Written at most every TOKEN_TOUCH_INTERVAL_S, not once per request.
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    user: Mapped[User] = relationship()


class UserSession(Base):
    """A browser session: the cookie carries a random id, the database only its SHA-256."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class MagicLink(Base):
    __tablename__ = "magic_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_user_status", "user_id", "status"),
        Index("ix_jobs_user_created", "user_id", "created_at"),
        Index("ix_jobs_status_scheduled", "status", "scheduled_at"),
        Index("ix_jobs_user_idempotency", "user_id", "idempotency_key"),
        Index("ix_jobs_type_unique", "type", "unique_key"),
        Index("ix_jobs_worker_status", "worker", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    queue: Mapped[str] = mapped_column(String(50))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[Any | None] = mapped_column(JSON, default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # Submitted with debounce_seconds: a repeat while the job is scheduled moves it (shared.debounce).
    debounce_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # Declared by the job type: one active job per (type, unique_key).
    unique_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # Declared by the job type: at most concurrency_limit jobs with this key run at once.
    concurrency_key: Mapped[str | None] = mapped_column(String(200), default=None, index=True)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer, default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    worker_pid: Mapped[int | None] = mapped_column(Integer, default=None)
    # Set when sending to the broker failed; the maintenance loop sends it again.
    needs_dispatch: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # Fair share (shared.fairshare): a queued job waiting in the database for its owner's turn, not yet
    # sent to the broker. The user sees it ``queued`` like any other.
    held: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A failed job an operator discarded: out of the dead-letter set, kept for history.
    discarded_at: Mapped[datetime | None] = mapped_column(default=None)
    # A child job of a fan-out (batch import): children do not count against the user's limit.
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), default=None, index=True
    )
    # A step of a workflow (shared.workflows); its key, dependencies and failure rule: WorkflowStep.
    workflow_id: Mapped[str | None] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), default=None, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    scheduled_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Workflow(Base):
    """Jobs of one user run in dependency order (contract §8); its status follows its steps."""

    __tablename__ = "workflows"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    status: Mapped[str] = mapped_column(String(16), index=True)  # running, succeeded, failed, canceled
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class WorkflowStep(Base):
    """One job of a workflow: its key, the keys it runs after and what a failed dependency does to it."""

    __tablename__ = "workflow_steps"
    __table_args__ = (UniqueConstraint("workflow_id", "key", name="uq_workflow_steps_workflow_key"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    after: Mapped[list[str]] = mapped_column(JSON, default=list)
    on_failure: Mapped[str] = mapped_column(String(20), default="cancel_dependents")
    # Set once its dependencies settled it (queued, or canceled by a failed one): until then the job is
    # ``blocked`` and its type's concurrency key is held here, so no slot wake-up can start it early.
    released_at: Mapped[datetime | None] = mapped_column(default=None)
    held_concurrency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # The step whose ``ctx.add_steps`` added this one (None: submitted with the workflow).
    added_by: Mapped[str | None] = mapped_column(String(32), default=None)


class JobSlot(Base):
    """A held concurrency slot: the unique (key, slot) pair makes acquiring one atomic."""

    __tablename__ = "job_slots"
    __table_args__ = (UniqueConstraint("key", "slot", name="uq_job_slots_key_slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    slot: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)


class QueueState(Base):
    """A queue's operator-set state; a paused queue is not consumed by any worker."""

    __tablename__ = "queue_states"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_by: Mapped[str | None] = mapped_column(String(320), default=None)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """One operator action: who did what to which target, and when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class JobEvent(Base):
    """One progress or state change of a job, as it was published (kept one day)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class JobAttempt(Base):
    """One run of a job body, with its error when it failed."""

    __tablename__ = "job_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    error_type: Mapped[str | None] = mapped_column(String(200), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    traceback: Mapped[str | None] = mapped_column(Text, default=None)


class Character(Base):
    __tablename__ = "characters"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), unique=True, default=None
    )
    name: Mapped[str] = mapped_column(String(100))
    race: Mapped[str] = mapped_column(String(50))
    char_class: Mapped[str] = mapped_column(String(50))
    level: Mapped[int] = mapped_column(Integer)
    alignment: Mapped[str | None] = mapped_column(String(50), default=None)
    abilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    background: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxMail(Base):
    """Mail waiting to be delivered (or, without SMTP_URL, kept for the /dev/mail preview)."""

    __tablename__ = "outbox_mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    to_addr: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookDelivery(Base):
    """One signed webhook delivery: stored once per (source, delivery id), processed by one job."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("source", "delivery_id", name="uq_webhook_deliveries_source_delivery"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(50))
    delivery_id: Mapped[str] = mapped_column(String(200))
    event: Mapped[str | None] = mapped_column(String(100), default=None)
    body: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), default=None)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    processed_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class CharacterSearch(Base):
    """The searchable text of one character, written by ``content.index``.

    The full-text index over it is dialect-specific and lives in the migration: an FTS5 table kept in step
    by triggers on SQLite, a generated ``tsvector`` column with a GIN index on PostgreSQL.
    """

    __tablename__ = "character_search"

    id: Mapped[int] = mapped_column(primary_key=True)  # the FTS5 rowid on SQLite
    character_id: Mapped[str] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text, default="")
    indexed_at: Mapped[datetime] = mapped_column(default=utcnow)


# Debounce (shared.debounce): at most one scheduled job per owner, type and debounce key, even when two
# processes submit at once.
Index(
    "uq_jobs_debounce_scheduled",
    Job.user_id,
    Job.type,
    Job.debounce_key,
    unique=True,
    sqlite_where=text("status = 'scheduled' AND debounce_key IS NOT NULL"),
    postgresql_where=text("status = 'scheduled' AND debounce_key IS NOT NULL"),
)

# Operations (console charts, metrics): finished jobs and runs are read by the time they finished.
Index("ix_jobs_finished_at", Job.finished_at)
Index("ix_job_attempts_finished_at", JobAttempt.finished_at)


class JobRollup(Base):
    """Finished runs of one queue (``"*"``: every queue) in one time bucket, for the console's 24 h charts.

    Minute buckets cover the last hour or so, 15-minute buckets the day; both are recomputed from
    ``job_attempts`` by the workers' maintenance loop, so the charts survive a Redis restart.
    """

    __tablename__ = "job_rollups"
    __table_args__ = (UniqueConstraint("bucket_s", "bucket_start", "queue", name="uq_job_rollups_bucket"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bucket_s: Mapped[int] = mapped_column(Integer)  # 60 or 900
    bucket_start: Mapped[datetime] = mapped_column()
    queue: Mapped[str] = mapped_column(String(50))
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    wait_p50_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    wait_p95_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    run_p50_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    run_p95_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


# The operators' job browser (newest first, filtered by status, type or queue): chosen from EXPLAIN over a
# million rows (BENCHMARKS.md, P8).
Index("ix_jobs_created_id", Job.created_at, Job.id)
Index("ix_jobs_status_created", Job.status, Job.created_at)
Index("ix_jobs_type_created", Job.type, Job.created_at)
Index("ix_jobs_queue_created", Job.queue, Job.created_at)

# Fair share (shared.fairshare): the queue's sent-but-not-started jobs, its waiting users and each user's
# oldest held job are all walks of the first index; each user's recent starts in a queue, of the second.
Index("ix_jobs_fair_turns", Job.queue, Job.status, Job.held, Job.user_id, Job.created_at)
Index("ix_jobs_queue_user_started", Job.queue, Job.user_id, Job.started_at)
