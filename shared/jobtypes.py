"""What a job type declares: params schema, queue, retry policy and body.

A job type is one small module under ``workers/jobs`` that builds a ``JobType``; bodies receive a
``JobContext`` and never see Celery.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ValidationError

from shared import defaults
from shared.errors import PermanentError, TransientError

QUEUES: tuple[str, ...] = ("critical", "high", "default", "low")  # highest first

# Where a job type runs. "threads": a thread of a thread-pool worker (I/O-bound work: mail, webhooks, LLM
# calls, exports, indexing). "process": a process of a prefork worker, for CPU-bound work and for bodies
# that may need a hard kill (a C call that ignores signals, an extension that can crash its process).
Pool = Literal["threads", "process"]
POOLS: tuple[str, ...] = ("threads", "process")
# A "process" type's messages go to its queue's process twin on the broker ("default" -> "default.process"),
# which only prefork workers consume; the job's ``queue`` stays the public name.
PROCESS_SUFFIX = ".process"


def broker_queue(queue: str, pool: str = "threads") -> str:
    """The broker queue a job of ``queue`` is sent to, for a type of ``pool``."""
    return queue + PROCESS_SUFFIX if pool == "process" else queue


def public_queue(broker_name: str) -> str:
    """The public queue a broker queue carries (``default.process`` -> ``default``)."""
    return broker_name.removesuffix(PROCESS_SUFFIX)


BROKER_QUEUES: tuple[str, ...] = (*QUEUES, *(broker_queue(q, "process") for q in QUEUES))


def queue_rank(queue: str) -> int:
    """0 for the highest queue (``critical``); larger is lower."""
    return QUEUES.index(queue)


class JobContext(Protocol):
    """What a job body can do besides computing its result."""

    job_id: str
    user_id: int
    attempt: int

    def progress(self, percent: int, message: str = "") -> None:
        """Record and publish progress; raises ``JobCanceled`` if the job was asked to stop."""

    def session(self) -> Any:
        """A context manager giving a SQLAlchemy session that commits on success."""

    def add_steps(self, steps: list[Any]) -> list[dict[str, Any]]:
        """Add steps to this job's workflow (``shared.workflows``); the workflow waits for them too."""


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a job gets and how long it waits between them."""

    max_attempts: int = defaults.RETRY_MAX_ATTEMPTS
    backoff_base_s: float = defaults.RETRY_BACKOFF_BASE_S
    backoff_max_s: float = defaults.RETRY_BACKOFF_MAX_S
    jitter_ratio: float = defaults.RETRY_JITTER_RATIO
    # Errors no attempt can fix: the job fails at once ("discard"). Anything else is retried while
    # attempts remain, as Sidekiq does: an unexpected error is more often passing than permanent.
    discard_on: tuple[type[BaseException], ...] = (PermanentError, ValidationError)

    def decide(self, exc: BaseException, attempt: int) -> Literal["retry", "fail"]:
        """``retry`` while attempts remain, unless the error is permanent."""
        if isinstance(exc, TransientError):
            return "retry" if attempt < self.max_attempts else "fail"
        if isinstance(exc, self.discard_on):
            return "fail"
        return "retry" if attempt < self.max_attempts else "fail"

    def delay_s(self, attempt: int, exc: BaseException | None = None) -> float:
        """Exponential backoff with jitter before attempt ``attempt + 1``; honours a given retry-after."""
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            return max(0.0, float(retry_after))
        base = min(self.backoff_max_s, self.backoff_base_s * (2 ** max(0, attempt - 1)))
        return base * (1 + random.uniform(-self.jitter_ratio, self.jitter_ratio))

    def describe(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "backoff_base_s": self.backoff_base_s,
            "backoff_max_s": self.backoff_max_s,
            "jitter_ratio": self.jitter_ratio,
            "discard_on": [e.__name__ for e in self.discard_on],
        }


@dataclass(frozen=True)
class ConcurrencyLimit:
    """At most ``limit`` jobs with the same key run at once; the rest wait as ``blocked``.

    ``key`` gets the validated params and the submitting user's id, e.g. ``lambda p, uid: f"user:{uid}"``.
    """

    key: Callable[[Any, int], str]
    limit: int = 1


@dataclass(frozen=True)
class JobType:
    """One kind of job: everything the web needs to accept it and a worker needs to run it."""

    name: str
    description: str
    params: type[BaseModel]
    perform: Callable[[JobContext, Any], Any]
    queue: str = "default"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # One active job per value: a second submission while one is active returns the first job.
    unique_by: Callable[[Any], str] | None = None
    concurrency: ConcurrencyLimit | None = None
    # At most N starts per period across all workers, in the ``limits`` syntax: "60 per minute".
    rate_limit: str | None = None
    # Submitted by the system for itself (mail delivery, webhook processing, cleanups, ...): hidden from
    # normal users, who are refused it like an unknown type; admins and the system's own path may submit it.
    internal: bool = False
    # Seconds one attempt may run; past it the attempt is stopped and fails with ``TimeLimitExceeded``.
    # ``QUESTBOARD_TIME_LIMITS`` overrides it per installation.
    time_limit_seconds: int = defaults.JOB_TIME_LIMIT_S
    # How many jobs a job of this type will submit as its children (a fan-out), counted up front against
    # the owner's cap on waiting jobs, so a batch that cannot fit is refused before it starts.
    fan_out: Callable[[Any], int] | None = None
    # Which worker pool runs it (see ``Pool``): "process" types run only on prefork workers.
    pool: Pool = "threads"

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise ValueError(f"job type {self.name!r}: pool must be one of {', '.join(POOLS)}")

    def validate_params(self, raw: dict[str, Any]) -> BaseModel:
        return self.params.model_validate(raw)

    def describe(self) -> dict[str, Any]:
        """The public description served at /api/job-types."""
        return {
            "type": self.name,
            "queue": self.queue,
            "description": self.description,
            "params_schema": self.params.model_json_schema(),
            "retry": self.retry.describe(),
            "unique": self.unique_by is not None,
            "concurrency_limit": self.concurrency.limit if self.concurrency else None,
            "rate_limit": self.rate_limit,
            "internal": self.internal,
            "time_limit_seconds": self.time_limit_seconds,
            "pool": self.pool,
        }
