"""Work every worker's main process does beside running jobs: heartbeat and releasing due jobs.

Started on ``worker_ready`` in the main process (not the pool children); every worker runs it, and the
conditional UPDATE in ``Lifecycle.release_due`` makes sure each due job is released once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

import redis
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from shared import defaults
from shared.db import forget_engines
from shared.settings import get_settings

log = logging.getLogger("questboard.maintenance")
_stop = threading.Event()


def heartbeat_key(hostname: str) -> str:
    return defaults.WORKER_KEY_PREFIX + hostname


def _loop(hostname: str, queues: list[str], concurrency: int) -> None:
    from workers.runtime import lifecycle

    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    next_beat = 0.0
    while not _stop.is_set():
        now = time.monotonic()
        try:
            if now >= next_beat:
                info = {
                    "name": hostname,
                    "queues": queues,
                    "concurrency": concurrency,
                    "pid": os.getpid(),
                    "last_heartbeat": time.time(),
                }
                client.set(heartbeat_key(hostname), json.dumps(info), ex=int(defaults.WORKER_SEEN_WINDOW_S))
                next_beat = now + defaults.WORKER_HEARTBEAT_INTERVAL_S
            lifecycle().release_due()
        except Exception:  # keep the loop alive through Redis/DB blips; the error is logged
            log.exception("maintenance pass failed")
        _stop.wait(defaults.MAINTENANCE_INTERVAL_S)
    try:
        client.delete(heartbeat_key(hostname))
    except redis.RedisError:
        pass


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    forget_engines()


@worker_ready.connect
def _start(sender: Any = None, **_: Any) -> None:
    consumer = sender
    hostname = consumer.hostname
    queues = sorted(q.name for q in consumer.task_consumer.queues) if consumer.task_consumer else []
    concurrency = getattr(consumer.pool, "limit", None) or consumer.app.conf.worker_concurrency or 1
    _stop.clear()
    threading.Thread(
        target=_loop, args=(hostname, queues, concurrency), name="questboard-maintenance", daemon=True
    ).start()


@worker_shutdown.connect
def _stop_loop(**_: Any) -> None:
    _stop.set()
