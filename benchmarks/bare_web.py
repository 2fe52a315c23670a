"""The bare baselines for P2, P3 and P7: a minimal Flask + Flask-SocketIO app, served by the same gunicorn
command as Questboard (``Stack.web(env, app="benchmarks.bare_web:app")``).

- ``POST /submit``: one plain Celery ``send_task`` (``bench.mark`` to queue ``BENCH_QUEUE``), 202 JSON.
  No database, no auth: what "plain Flask + Celery" costs per submitted task.
- ``GET /healthz``: the framework's floor.
- Socket.IO namespace ``/jobs``: ``subscribe {"job_id"}`` joins room ``job:<id>``; nothing else. Relays
  what a write-only ``RedisManager`` publishes on channel ``BENCH_CHANNEL`` (default ``bench-bare``).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from celery import Celery
from flask import Flask, jsonify, request
from flask_socketio import Namespace, SocketIO, join_room

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL = os.environ.get("BENCH_CHANNEL", "bench-bare")
QUEUE = os.environ.get("BENCH_QUEUE", "bench")

celery_app = Celery("bench_bare_web")
celery_app.conf.update(
    broker_url=REDIS_URL,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    result_backend=None,
)

app = Flask(__name__)
socketio = SocketIO(app, message_queue=REDIS_URL, async_mode="threading", channel=CHANNEL)


@app.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@app.post("/submit")
def submit() -> Any:
    body = request.get_json(silent=True, force=True) or {}
    task_id = uuid.uuid4().hex
    celery_app.send_task(
        "bench.mark", args=[body.get("key") or task_id], queue=QUEUE, routing_key=QUEUE, task_id=task_id
    )
    return jsonify({"id": task_id}), 202


class Jobs(Namespace):
    def on_connect(self, auth: Any = None) -> None:
        return None

    def on_subscribe(self, data: Any) -> None:
        job_id = data.get("job_id") if isinstance(data, dict) else None
        if isinstance(job_id, str):
            join_room(f"job:{job_id}")


socketio.on_namespace(Jobs("/jobs"))
