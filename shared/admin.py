"""What the operator console, the admin API and the ops CLI read and do, in one place.

Reading: job counts, queues (broker depth, oldest-job latency, pause state, workers), live workers (their
Redis heartbeats), jobs by state, activity over the last hour, the audit log, and the alerts the console
shows. Acting: pause/resume a queue, retry/discard dead letters; every action is written to the audit log
with who did it. No Flask or Celery here: the web, the CLI and the tests all use it alone.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import func, select

from shared import defaults, fairshare, redisurl
from shared.db import get_sessionmaker
from shared.deadletters import DeadLetters
from shared.errors import InvalidRequest, NotFound
from shared.jobtypes import BROKER_QUEUES, QUEUES, public_queue
from shared.models import AuditEntry, Job, JobAttempt, User, utcnow
from shared.queues import QueueControl
from shared.serialize import iso, job_to_dict
from shared.states import Status

# Kombu's Redis transport keeps a queue's messages of priority p > 0 in the list "<queue>\x06\x16<p>".
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITIES = range(10)
REDIS_TIMEOUT_S = 2.0
JOB_LIST_LIMIT = 50
AUDIT_LIST_LIMIT = 50


def actor_for_cli() -> str:
    """The audit actor of a command run by an operator on a host: ``cli:<os user>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry (some containers)
        user = str(os.getuid())
    return f"cli:{user}"


def grant_viewer(database_url: str, user_id: int) -> User:
    """Make the user a read-only operator (an admin stays an admin); returns the updated user."""
    with get_sessionmaker(database_url)() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.")
        user.is_viewer = True
        session.commit()
        session.refresh(user)
        session.expunge(user)
        return user


def audit_to_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "details": entry.details,
        "created_at": iso(entry.created_at),
    }


@dataclass(frozen=True)
class WorkerInfo:
    """One live worker, as its last heartbeat described it."""

    name: str
    queues: list[str]  # the queues it takes jobs from now (a paused queue is left out)
    configured_queues: list[str]  # the queues it was started for
    concurrency: int
    last_heartbeat: float  # unix seconds

    @classmethod
    def from_heartbeat(cls, raw: str) -> WorkerInfo:
        data = json.loads(raw)
        queues = list(data.get("queues") or [])
        return cls(
            name=str(data["name"]),
            queues=queues,
            configured_queues=list(data.get("configured_queues") or queues),
            concurrency=int(data.get("concurrency") or 1),
            last_heartbeat=float(data.get("last_heartbeat") or 0.0),
        )


class Operations:
    """The operator's view of the system and the actions they may take on it."""

    def __init__(self, database_url: str, redis_url: str, dead_letters: DeadLetters) -> None:
        self.database_url = database_url
        self._sessions = get_sessionmaker(database_url)
        self._redis_url = redis_url
        self.dead_letters = dead_letters
        self.queue_control = QueueControl(database_url)

    def _redis(self) -> redis.Redis:
        return redisurl.client(
            self._redis_url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            decode_responses=True,
        )

    # ----- reading -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """``{"by_status": {status: n}, "by_type": {type: {status: n}}}``; every status is in by_status."""
        with self._sessions() as session:
            rows = session.execute(select(Job.type, Job.status, func.count()).group_by(Job.type, Job.status))
            by_status = {s.value: 0 for s in Status}
            by_type: dict[str, dict[str, int]] = {}
            for job_type, status, count in rows:
                by_status[status] = by_status.get(status, 0) + count
                by_type.setdefault(job_type, {})[status] = count
        order = list(by_status)  # statuses in their lifecycle order, then any unknown ones
        return {
            "by_status": by_status,
            "by_type": {
                t: dict(sorted(counts.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))
                for t, counts in sorted(by_type.items())
            },
        }

    def live_workers(self) -> list[WorkerInfo]:
        """Workers whose heartbeat key has not expired, by name."""
        client = self._redis()
        try:
            keys = sorted(client.scan_iter(match=defaults.WORKER_KEY_PREFIX + "*", count=200))
            raws = client.mget(keys) if keys else []
        finally:
            client.close()
        workers = []
        for raw in raws:
            if raw:  # expired between SCAN and MGET: that worker is gone
                try:
                    workers.append(WorkerInfo.from_heartbeat(raw))
                except (ValueError, KeyError, TypeError):
                    continue  # not a heartbeat we understand; never fail the console over it
        return sorted(workers, key=lambda w: w.name)

    def workers(self, live: list[WorkerInfo] | None = None) -> list[dict[str, Any]]:
        """``[{"name", "queues", "concurrency", "current_jobs", "last_heartbeat"}]`` (live workers)."""
        live = self.live_workers() if live is None else live
        running: dict[str, list[str]] = {w.name: [] for w in live}
        if live:
            with self._sessions() as session:
                rows = session.execute(
                    select(Job.worker, Job.id)
                    .where(Job.status == Status.RUNNING.value, Job.worker.in_(list(running)))
                    .order_by(Job.started_at)
                )
                for worker, job_id in rows:
                    running[worker].append(job_id)
        return [
            {
                "name": w.name,
                "queues": w.queues,
                "concurrency": w.concurrency,
                "current_jobs": running[w.name],
                "last_heartbeat": iso(datetime.fromtimestamp(w.last_heartbeat, UTC)),
            }
            for w in live
        ]

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting in the broker per queue (LLEN of the queue's lists, every priority), its
        process twin (``default.process``: the jobs of its ``pool="process"`` types) included."""
        client = self._redis()
        try:
            with client.pipeline(transaction=False) as pipe:
                for queue in BROKER_QUEUES:
                    for priority in PRIORITIES:
                        pipe.llen(queue if priority == 0 else f"{queue}{PRIORITY_SEPARATOR}{priority}")
                lengths = pipe.execute()
        finally:
            client.close()
        n = len(PRIORITIES)
        depths = dict.fromkeys(QUEUES, 0)
        for i, queue in enumerate(BROKER_QUEUES):
            depths[public_queue(queue)] += sum(lengths[i * n : (i + 1) * n])
        return depths

    def oldest_queued(self) -> dict[str, datetime]:
        """When the longest-waiting queued job of each queue was queued (its last transition)."""
        with self._sessions() as session:
            rows = session.execute(
                select(Job.queue, func.min(Job.updated_at))
                .where(Job.status == Status.QUEUED.value)
                .group_by(Job.queue)
            )
            return {queue: _aware(oldest) for queue, oldest in rows if oldest is not None}

    def queues(self, workers: Iterable[WorkerInfo] | None = None) -> list[dict[str, Any]]:
        """``[{"name", "depth", "latency_seconds", "paused", "workers"}]`` for every queue."""
        live = list(self.live_workers() if workers is None else workers)
        depths = self.queue_depths()
        held = fairshare.held_counts(self._sessions)  # fair share: held jobs wait too (not in Redis yet)
        return [
            {
                **queue,
                "depth": depths.get(queue["name"], 0) + held.get(queue["name"], 0),
                "workers": [w.name for w in live if queue["name"] in w.configured_queues],
            }
            for queue in self.queues_from_database()
        ]

    def queues_from_database(self) -> list[dict[str, Any]]:
        """``[{"name", "latency_seconds", "paused"}]`` for every queue: what is known without Redis."""
        oldest, paused = self.oldest_queued(), self.queue_control.paused()
        now = utcnow()
        return [
            {
                "name": queue,
                "latency_seconds": round(max(0.0, (now - oldest[queue]).total_seconds()), 3)
                if queue in oldest
                else 0.0,
                "paused": queue in paused,
            }
            for queue in QUEUES
        ]

    def jobs_in(self, statuses: Iterable[Status], limit: int = JOB_LIST_LIMIT) -> list[dict[str, Any]]:
        """Jobs in these states, oldest first, each with the worker running it."""
        values = [s.value for s in statuses]
        with self._sessions() as session:
            jobs = session.scalars(
                select(Job).where(Job.status.in_(values)).order_by(Job.updated_at, Job.id).limit(limit)
            )
            return [{**job_to_dict(job), "worker": job.worker} for job in jobs]

    def failed(self, job_type: str | None = None) -> list[dict[str, Any]]:
        """The dead-letter set (optionally of one type), newest first, with every attempt's error."""
        return self.dead_letters.list(job_type or None)

    def failed_counts(self) -> dict[str, int]:
        """Dead-letter jobs per type."""
        with self._sessions() as session:
            rows = session.execute(
                select(Job.type, func.count())
                .where(Job.status == Status.FAILED.value, Job.discarded_at.is_(None))
                .group_by(Job.type)
            )
            return dict(sorted((t, n) for t, n in rows))

    def run_outcomes(self, since: datetime) -> dict[str, dict[str, int]]:
        """Finished runs (attempts) per type and outcome since ``since``."""
        with self._sessions() as session:
            rows = session.execute(
                select(Job.type, JobAttempt.outcome, func.count())
                .join(Job, Job.id == JobAttempt.job_id)
                .where(JobAttempt.finished_at >= since, JobAttempt.outcome.is_not(None))
                .group_by(Job.type, JobAttempt.outcome)
            )
            result: dict[str, dict[str, int]] = {}
            for job_type, outcome, count in rows:
                result.setdefault(job_type, {})[outcome] = count
            return result

    def activity(self, window_s: int = 3600, bucket_s: int = 60) -> dict[str, list[Any]]:
        """Per-bucket series over the window, for the charts: ``t`` (bucket start, unix seconds),
        runs ``succeeded`` and ``failed``, and ``wait_s``, the mean wait of jobs before their first run."""
        end = (int(utcnow().timestamp()) // bucket_s + 1) * bucket_s
        start = end - window_s
        since = datetime.fromtimestamp(start, UTC)
        n = window_s // bucket_s
        series: dict[str, list[Any]] = {"t": [start + i * bucket_s for i in range(n)]}
        series["succeeded"], series["failed"] = [0] * n, [0] * n
        waits: list[list[float]] = [[] for _ in range(n)]
        with self._sessions() as session:
            runs = session.execute(
                select(JobAttempt.finished_at, JobAttempt.outcome).where(JobAttempt.finished_at >= since)
            )
            for finished, outcome in runs:
                if outcome in ("succeeded", "failed"):
                    series[outcome][_bucket(finished, start, bucket_s, n)] += 1
            firsts = session.execute(
                select(JobAttempt.started_at, Job.created_at, Job.scheduled_at)
                .join(Job, Job.id == JobAttempt.job_id)
                .where(JobAttempt.number == 1, JobAttempt.started_at >= since)
            )
            for started, created, scheduled in firsts:
                ready = scheduled if scheduled is not None and scheduled <= started else created
                waits[_bucket(started, start, bucket_s, n)].append((started - ready).total_seconds())
        series["wait_s"] = [round(sum(w) / len(w), 3) if w else None for w in waits]
        return series

    def audit_log(self, limit: int = AUDIT_LIST_LIMIT) -> list[dict[str, Any]]:
        """The newest operator actions first."""
        with self._sessions() as session:
            rows = session.scalars(
                select(AuditEntry).order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc()).limit(limit)
            )
            return [audit_to_dict(row) for row in rows]

    # ----- acting (each one audited) ---------------------------------------------------------------

    def record(
        self, actor: str, action: str, target: str = "", details: dict[str, Any] | None = None
    ) -> None:
        """Write one operator action to the audit log."""
        with self._sessions() as session:
            session.add(AuditEntry(actor=actor, action=action, target=target[:200], details=details or {}))
            session.commit()

    def set_queue_paused(self, name: str, paused: bool, actor: str) -> None:
        """Pause or resume a queue (every worker follows within about a second, restarts included)."""
        self.queue_control.set_paused(name, paused, actor)
        self.record(actor, "queue.pause" if paused else "queue.resume", name)

    def retry_failed(self, job_id: str, actor: str) -> dict[str, Any]:
        job = self.dead_letters.retry(job_id)
        self.record(actor, "job.retry", job_id, {"type": job["type"]})
        return job

    def discard_failed(self, job_id: str, actor: str) -> dict[str, Any]:
        job = self.dead_letters.discard(job_id)
        self.record(actor, "job.discard", job_id, {"type": job["type"]})
        return job

    def retry_failed_of_type(self, job_type: str, actor: str) -> int:
        job_type = _job_type(job_type)
        count = self.dead_letters.retry_all(job_type)
        self.record(actor, "job.retry_all", job_type, {"count": count})
        return count

    def discard_failed_of_type(self, job_type: str, actor: str) -> int:
        job_type = _job_type(job_type)
        count = self.dead_letters.discard_all(job_type)
        self.record(actor, "job.discard_all", job_type, {"count": count})
        return count


def _job_type(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest('Give the job type: {"type": T}.', {"type": "required"})
    return value.strip()


def _bucket(moment: datetime, start: int, bucket_s: int, n: int) -> int:
    return min(n - 1, max(0, int(moment.timestamp() - start) // bucket_s))


def _aware(value: datetime) -> datetime:
    # Aggregates bypass the column type, so SQLite hands back a naive (UTC) datetime or even a string.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def window_start(seconds: float) -> datetime:
    """``seconds`` ago, for the windowed readers."""
    return utcnow() - timedelta(seconds=seconds)
