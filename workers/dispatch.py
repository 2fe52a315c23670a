"""Sends a committed job to its Celery queue."""

from __future__ import annotations

from celery import Celery


class CeleryDispatcher:
    def __init__(self, app: Celery) -> None:
        self._app = app

    def send(self, job_id: str, job_type: str, queue: str) -> None:
        # The task id is the job id, so Flower shows the same id as the API.
        self._app.send_task(job_type, args=[job_id], queue=queue, routing_key=queue, task_id=job_id)
