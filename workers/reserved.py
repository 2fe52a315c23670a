"""Job ids a worker has taken from Redis and not yet started: if the worker dies, they are sent again.

Kombu would give such a message back only after the visibility timeout; the maintenance loop of another
worker re-sends the ids of a worker whose heartbeat expired within seconds (``recover_remote``).

Noting an id is off the consumer loop: ``task_received`` appends it in memory and a noter thread writes
what accumulated with one SADD at most every ``NOTE_EVERY_S`` (a synchronous SADD per message was 12 %
of a worker's CPU, BENCHMARKS.md P1). The noter waits ``NOTE_EVERY_S`` after the first id of a batch, then
writes only the ids still waiting in this worker: those a pool process has already accepted (Celery's
``active_requests``) or that have finished are covered by the database (a running job's row names its
worker) and need no note, so a busy worker writes no SADD for the jobs it starts at once (BENCHMARKS.md,
"Redis commands per job"). A worker killed before it noted a message leaves the message in kombu's
unacked hash, from which ``workers.unacked.restore_unnoted`` gives it back after a few seconds.
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
            time.sleep(NOTE_EVERY_S)  # let ids accumulate (one round trip per window), and start
            with self._wakeup:
                batch, self._pending = self._pending, {}
            batch = {host: ids for host, ids in ((h, still_waiting(i)) for h, i in batch.items()) if ids}
            if not batch:
                continue
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


def active_job_ids() -> set[str] | None:
    """The ids of the tasks a pool slot of this worker has accepted and not yet finished: Celery's own
    bookkeeping in the worker's main process (``celery.worker.state``); None when another thread changed
    it while it was copied."""
    from celery.worker import state

    try:
        return {request.id for request in list(state.active_requests)}
    except RuntimeError:
        return None


def still_waiting(job_ids: list[str]) -> list[str]:
    """Of ``job_ids`` (received by this worker process), those not yet accepted by a pool process and not
    finished (``celery.worker.state``)."""
    from celery.worker import state

    active = active_job_ids()
    if active is None:  # changed while copied: note them all, as before
        return job_ids
    return [job_id for job_id in job_ids if job_id in state.requests and job_id not in active]


@cache
def reserved_noter() -> ReservedNoter:
    return ReservedNoter(get_settings().redis_url)
