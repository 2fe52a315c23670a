"""Job ids a worker has taken from Redis and not yet started: if the worker dies, they are sent again.

Kombu would give such a message back only after the visibility timeout; the maintenance loop of another
worker re-sends the ids of a worker whose heartbeat expired within seconds (``recover_remote``).

Noting an id is off the consumer loop: ``task_received`` appends it in memory and a noter thread writes
what accumulated with one SADD at most every ``NOTE_EVERY_S`` (a synchronous SADD per message was 12 %
of a worker's CPU, BENCHMARKS.md P1). A worker killed within that window after receiving a message
leaves it to kombu's visibility timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import cache

import redis

from shared import redisurl
from shared.settings import get_settings

RESERVED_PREFIX = "questboard:reserved:"
NOTE_EVERY_S = 0.05

log = logging.getLogger("questboard.maintenance")


def reserved_key(hostname: str) -> str:
    return RESERVED_PREFIX + hostname


class ReservedNoter:
    """Batches SADDs of received job ids, one thread per worker main process."""

    def __init__(self, redis_url: str) -> None:
        self._client = redisurl.client(redis_url, socket_timeout=2)
        self._pending: dict[str, list[str]] = {}
        self._wakeup = threading.Condition()
        threading.Thread(target=self._run, name="questboard-reserved", daemon=True).start()

    def note(self, hostname: str, job_id: str) -> None:
        with self._wakeup:
            self._pending.setdefault(hostname, []).append(job_id)
            self._wakeup.notify()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._pending:
                    self._wakeup.wait()
                batch, self._pending = self._pending, {}
            try:
                pipe = self._client.pipeline(transaction=False)
                for hostname, ids in batch.items():
                    pipe.sadd(reserved_key(hostname), *ids)
                pipe.execute()
            except redis.RedisError as exc:
                log.warning(
                    "could not note reserved jobs",
                    extra={"count": sum(map(len, batch.values())), "error": repr(exc)},
                )
            time.sleep(NOTE_EVERY_S)  # let the next ids accumulate: one round trip per window at most


@cache
def reserved_noter() -> ReservedNoter:
    return ReservedNoter(get_settings().redis_url)
