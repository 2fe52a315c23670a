"""Messages a dead worker took from Redis and never noted: given back to their queues within seconds.

Kombu's Redis transport writes every delivered message to the ``unacked`` hash (with its delivery time
in the ``unacked_index`` zset) right after the BRPOP that took it, before Celery sees it; only the
visibility timeout gives such a message back when its worker dies. The reserved sets
(``workers.reserved``) cover the messages a worker noted, but a worker killed between taking a message
and noting it leaves nothing but that unacked entry.

``restore_unnoted`` gives back every unacked message older than ``UNACKED_RESTORE_GRACE_S`` whose job is
still ``queued`` and that no live worker noted. A live worker notes what it takes within milliseconds,
so an old, un-noted delivery of a queued job belongs to a dead worker. Should the guess ever be wrong
(a live worker that could not note), the job's message exists twice, which is harmless: only one claim
can move the job from ``queued`` to ``running``.

One window remains where the message is nowhere in Redis: between the BRPOP that took it and the write
of its unacked entry (a few milliseconds in the consumer loop). A worker killed there leaves a ``queued``
job with no message at all, which not even the visibility timeout would send again. ``sweep_lost`` finds
such jobs: queued, due, unchanged for ``LOST_SWEEP_GRACE_S``, and whose id is in no queue list, no unacked
entry and no live worker's reserved set; it sends them again (again, a rare double message is harmless).
It reads every queue list, so it runs only while the backlog is at most ``LOST_SWEEP_MAX_BACKLOG``
messages, or in the pass after a worker was found dead.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import defaults
from shared.jobtypes import BROKER_QUEUES
from shared.models import Job, utcnow
from shared.states import Status

log = logging.getLogger("questboard.maintenance")

UNACKED_KEY = "unacked"  # kombu's Redis transport defaults (no global key prefix in Questboard)
UNACKED_INDEX_KEY = "unacked_index"


PRIORITY_SEPARATOR = "\x06\x16"  # kombu keeps priority p > 0 of queue q in the list "q\x06\x16p"


def _job_id(raw: str | None, wrapped: bool = True) -> str | None:
    """The task (job) id of a message: an unacked entry is ``[message, exchange, routing_key]``."""
    try:
        payload = json.loads(raw or "")
        return str((payload[0] if wrapped else payload)["headers"]["id"])
    except (ValueError, LookupError, TypeError):
        return None


def old_deliveries(client: redis.Redis, grace_s: float) -> dict[str, str]:
    """delivery tag -> job id of unacked messages delivered more than ``grace_s`` ago."""
    tags = client.zrangebyscore(
        UNACKED_INDEX_KEY, "-inf", time.time() - grace_s, start=0, num=defaults.UNACKED_RESTORE_BATCH
    )
    if not tags:
        return {}
    raws = client.hmget(UNACKED_KEY, tags)
    return {tag: job_id for tag, raw in zip(tags, raws, strict=True) if (job_id := _job_id(raw))}


def restore_unnoted(
    app: Any, client: redis.Redis, sessions: sessionmaker[Session], noted_by_live: set[str]
) -> set[str]:
    """Give back un-noted deliveries of queued jobs (see the module doc); returns their job ids."""
    deliveries = old_deliveries(client, defaults.UNACKED_RESTORE_GRACE_S)
    candidates = {tag: job_id for tag, job_id in deliveries.items() if job_id not in noted_by_live}
    if not candidates:
        return set()
    with sessions() as session:
        queued = set(
            session.scalars(
                select(Job.id).where(Job.id.in_(set(candidates.values())), Job.status == Status.QUEUED.value)
            )
        )
    restored: set[str] = set()
    todo = [(tag, job_id) for tag, job_id in candidates.items() if job_id in queued]
    if not todo:
        return restored
    with app.connection_for_write() as conn:
        qos = conn.default_channel.qos  # kombu's own restore: back on the queue, entry removed atomically
        for tag, job_id in todo:
            qos.restore_by_tag(tag)
            restored.add(job_id)
    log.warning("gave back messages a lost worker took but never noted", extra={"count": len(restored)})
    return restored


def queue_keys() -> list[str]:
    return [q + (f"{PRIORITY_SEPARATOR}{p}" if p else "") for q in BROKER_QUEUES for p in range(10)]


def backlog(client: redis.Redis) -> int:
    pipe = client.pipeline(transaction=False)
    for key in queue_keys():
        pipe.llen(key)
    return sum(pipe.execute())


def _ids_in_redis(client: redis.Redis) -> set[str]:
    present = {_job_id(raw) for _tag, raw in client.hscan_iter(UNACKED_KEY, count=500)}
    for key in queue_keys():
        present |= {_job_id(raw, wrapped=False) for raw in client.lrange(key, 0, -1)}
    present.discard(None)
    return present  # type: ignore[return-value]


def sweep_lost(
    client: redis.Redis, sessions: sessionmaker[Session], noted_by_live: set[str], send: Any
) -> int:
    """Send again the queued jobs whose message is nowhere (see the module doc); returns how many."""
    stale = utcnow() - timedelta(seconds=defaults.LOST_SWEEP_GRACE_S)
    with sessions() as session:
        candidates = list(
            session.scalars(
                select(Job)
                .where(
                    Job.status == Status.QUEUED.value,
                    Job.needs_dispatch.is_(False),
                    Job.held.is_(False),  # fair share: a held job has no message yet, it is not lost
                    Job.updated_at <= stale,
                    (Job.scheduled_at.is_(None)) | (Job.scheduled_at <= utcnow()),
                )
                .limit(defaults.LOST_SWEEP_MAX_BACKLOG)
            )
        )
        for job in candidates:
            session.expunge(job)
    if not candidates:
        return 0
    present = _ids_in_redis(client) | noted_by_live
    lost = [job for job in candidates if job.id not in present]
    for job in lost:
        send(job)
    if lost:
        log.warning("re-sent queued jobs whose message was lost with a worker", extra={"count": len(lost)})
    return len(lost)
