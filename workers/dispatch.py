"""Sends a committed job to its Celery queue."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from celery import Celery

from shared.jobtypes import JobType, broker_queue


def pools_of(registry: Mapping[str, JobType]) -> Callable[[str], str]:
    """The pool of a type by name, from ``registry`` ("threads" for a type it does not know)."""
    return lambda name: registry[name].pool if name in registry else "threads"


class CeleryDispatcher:
    def __init__(self, app: Celery, pool_of: Callable[[str], str] | None = None) -> None:
        self._app = app
        self._pool_of = pool_of or (lambda _type: "threads")

    def send(self, job_id: str, job_type: str, queue: str) -> None:
        # A "process" type goes to its queue's process twin, which only prefork workers consume.
        queue = broker_queue(queue, self._pool_of(job_type))
        # The task id is the job id, so Flower shows the same id as the API.
        self._app.send_task(job_type, args=[job_id], queue=queue, routing_key=queue, task_id=job_id)
