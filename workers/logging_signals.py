"""JSON logs for workers and beat: Celery's logging set-up is replaced by ``shared.logging_setup``.

Connecting ``setup_logging`` tells Celery not to configure logging itself; the pool processes inherit the
configuration. The ``around_perform`` hook puts the running job's id and type on every line its body logs.
Imported by ``workers.celery_app``, so every process that loads the Celery app has it.
"""

from __future__ import annotations

from typing import Any

from celery.signals import setup_logging

from shared import hooks
from shared.logging_setup import configure_logging, job_context


@setup_logging.connect
def _json_logging(loglevel: int | str | None = None, **_: Any) -> None:
    configure_logging(loglevel or "INFO")


if job_context not in hooks.around_perform:
    hooks.around_perform.append(job_context)
