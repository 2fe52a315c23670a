"""Structured logs: one JSON object per line, for the web, the workers and beat.

Every line has ``ts``, ``level``, ``logger`` and ``msg``, plus the record's ``extra`` fields (``job_id``,
``job_type``, ...). Lines logged while a job runs carry its id and type even when the caller did not pass
them (``job_context``). Secrets never reach the output: bearer tokens, API tokens, magic-link tokens,
passwords in URLs, sensitive query parameters and fields named like secrets are replaced with ``***``.
No Flask or Celery here; gunicorn's access lines are recognised by their logger name.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

REDACTED = "***"
# Attributes every LogRecord has: whatever else is on a record came from ``extra``.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SENSITIVE_KEY = re.compile(r"pass(word|wd)?|secret|token|authorization|cookie|api[_-]?key|signature", re.I)
_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    (re.compile(r"\bqb_[A-Za-z0-9_-]{8,}"), f"qb_{REDACTED}"),
    (re.compile(r"(/login/)[A-Za-z0-9_-]{8,}"), rf"\1{REDACTED}"),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@", re.I), rf"\1{REDACTED}@"),
    (
        re.compile(
            r"(?i)((?:^|[?&;\s])(?:[a-z_]*token|password|passwd|secret|api_?key|signature|key)=)[^&\s\"']+"
        ),
        rf"\1{REDACTED}",
    ),
]

# Every secret pattern above contains one of these literals: a string without any needs no substitution
# (one search instead of five substitutions for nearly every field of every line).
_MAYBE_SECRET = re.compile(r"(?i)bearer|basic|qb_|/login/|://|token|pass|secret|api_?key|signature|key=")

_job: ContextVar[tuple[str, str] | None] = ContextVar("questboard_job", default=None)


def redact(text: str) -> str:
    """``text`` with every secret we know the shape of replaced by ``***``."""
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any) -> Any:
    """A JSON-like value with secrets replaced by ``***``: values under sensitive keys and known shapes."""
    return _clean("", value)


def _clean(key: str, value: Any) -> Any:
    if _SENSITIVE_KEY.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(key, v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(repr(value))


@contextmanager
def job_context(job_id: str, job_type: str, attempt: int = 0) -> Iterator[None]:
    """Every line logged inside carries this job's id and type (an ``around_perform`` hook)."""
    token = _job.set((job_id, job_type))
    try:
        yield
    finally:
        _job.reset(token)


class JobContextFilter(logging.Filter):
    """Adds ``job_id``/``job_type`` of the running job (or of Celery's task lines) when missing."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _job.get()
        if current is not None:
            record.__dict__.setdefault("job_id", current[0])
            record.__dict__.setdefault("job_type", current[1])
        elif isinstance(record.args, Mapping) and record.name.startswith("celery."):
            # Celery's "Task <name>[<id>] received/succeeded/..." lines: the task id is the job id.
            task_id, task_name = record.args.get("id"), record.args.get("name")
            if isinstance(task_id, str) and isinstance(task_name, str):
                record.__dict__.setdefault("job_id", task_id)
                record.__dict__.setdefault("job_type", task_name)
        return True


# gunicorn's access-log atoms worth a field of their own.
_ACCESS_FIELDS = {"m": "method", "U": "path", "q": "query", "s": "status", "h": "remote", "a": "user_agent"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            entry["event"] = "http_request"
            for atom, field in _ACCESS_FIELDS.items():
                if record.args.get(atom) not in (None, "", "-"):
                    entry[field] = _clean(field, record.args[atom])
            if "status" in entry:
                entry["status"] = int(entry["status"]) if str(entry["status"]).isdigit() else entry["status"]
            if str(record.args.get("D", "")).isdigit():
                entry["duration_ms"] = round(int(record.args["D"]) / 1000, 3)
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = _clean(key, value)
        if record.exc_info:
            entry["exc_info"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack_info"] = redact(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def json_handler(stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stdout by default) writing JSON lines with the job context."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(JobContextFilter())
    return handler


def configure_logging(level: int | str = logging.INFO, stream: TextIO | None = None) -> None:
    """Make the root logger write JSON lines (replacing its handlers); idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(json_handler(stream))
    root.setLevel(level)
    logging.captureWarnings(True)


def use_json_for(*logger_names: str) -> None:
    """Give loggers that keep their own handlers (gunicorn's) the JSON format, keeping their streams."""
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(JsonFormatter())
            if not any(isinstance(f, JobContextFilter) for f in handler.filters):
                handler.addFilter(JobContextFilter())
