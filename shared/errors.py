"""The small error hierarchy job bodies raise, and the errors the job service raises to callers."""

from __future__ import annotations

from typing import Any


class JobError(Exception):
    """Base of every error a job body raises on purpose."""


class TransientError(JobError):
    """Worth another attempt (a connection dropped, a timeout, a rate limit).

    ``retry_after_s`` overrides the backoff when the other side said when to come back.
    """

    def __init__(self, message: str = "", retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentError(JobError):
    """No attempt will ever succeed (bad input, a deleted record): the job fails at once."""


class Postponed(JobError):  # noqa: N818 - it is an outcome, not a failure
    """Something the body uses is at its limit (an API's rate limit): run the job again in ``delay_s``
    seconds. The attempt does not count; raise it before the body changed anything it would not redo."""

    def __init__(self, message: str, delay_s: float) -> None:
        super().__init__(message)
        self.delay_s = max(0.0, float(delay_s))


class TimeLimitExceeded(JobError):  # noqa: N818 - the name users see on the attempt
    """The attempt ran past its type's ``time_limit_seconds`` and was stopped; retried by the policy."""


class JobCanceled(JobError):  # noqa: N818 - it is an outcome, not a failure
    """Raised inside a job body at a progress point once somebody asked to cancel the job."""


class ServiceError(Exception):
    """A request the job service refuses; ``http_status`` is what the API answers."""

    http_status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return {"error": body}


class NotFound(ServiceError):  # noqa: N818
    http_status = 404
    code = "not_found"


class Forbidden(ServiceError):  # noqa: N818
    http_status = 403
    code = "forbidden"


class InvalidRequest(ServiceError):
    http_status = 422
    code = "invalid"


class Conflict(ServiceError):
    http_status = 409
    code = "conflict"


class LimitReached(ServiceError):
    http_status = 429
    code = "too_many_active_jobs"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class WorkerRecycling(Exception):  # noqa: N818 - a state of the worker, raised to its own job threads
    """This worker process is giving its jobs back to end a stuck one (``workers.threadpool.recycle``):
    it claims nothing more, and its job threads' moves are no longer written (their jobs may already run
    elsewhere). A claim refused so hands its message back to the broker."""
