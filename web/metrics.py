"""``GET /metrics`` (Prometheus text format, admin or viewer bearer token) and the alert conditions.

Every number is read from the database and Redis at scrape time by one custom collector, so any number of
web processes answer the same without prometheus-client's multiprocess mode. Counters count rows that never
change once written (finished runs in ``job_attempts``), so they only go up. The thresholds below are the
ones in ``deploy/prometheus/alerts.yml`` (a test keeps the two equal); the console shows the same alerts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis
from flask import Blueprint, Response, g
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy import case, func, select

from shared.admin import Operations, window_start
from shared.db import get_sessionmaker
from shared.models import Job, JobAttempt
from web.auth import api_error, api_user_required
from web.services import operations

bp = Blueprint("metrics", __name__)

# Alert thresholds, shared with deploy/prometheus/alerts.yml.
BACKLOG_DEPTH = 100  # messages waiting in one queue
OLDEST_JOB_AGE_S = 300  # seconds the oldest queued job of a queue has waited
FAILURE_RATE = 0.25  # failed share of the finished runs of a job type ...
FAILURE_WINDOW_S = 600  # ... over this many seconds ...
FAILURE_MIN_RUNS = 5  # ... once at least this many runs finished

DURATION_BUCKETS_S = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
RUN_OUTCOMES = ("succeeded", "failed")


@dataclass(frozen=True)
class Alert:
    name: str  # the alert's name in alerts.yml
    subject: str  # the queue or job type it is about
    summary: str


def current_alerts(queues: list[dict[str, Any]], outcomes: dict[str, dict[str, int]]) -> list[Alert]:
    """The alerts.yml conditions, true now (Prometheus also waits for each rule's ``for``)."""
    alerts = []
    for q in queues:
        if q["depth"] > BACKLOG_DEPTH:
            alerts.append(Alert("QueueBacklog", q["name"], f"{q['depth']} jobs wait (over {BACKLOG_DEPTH})."))
        if q["latency_seconds"] > OLDEST_JOB_AGE_S:
            alerts.append(
                Alert(
                    "QueueOldestJobTooOld",
                    q["name"],
                    f"The oldest job has waited {q['latency_seconds']:.0f} s (over {OLDEST_JOB_AGE_S} s).",
                )
            )
        if not q["workers"] and not q["paused"]:
            alerts.append(Alert("QueueWithoutWorkers", q["name"], "No live worker takes jobs from it."))
    for job_type, counts in sorted(outcomes.items()):
        finished = sum(counts.get(o, 0) for o in RUN_OUTCOMES)
        if finished >= FAILURE_MIN_RUNS and counts.get("failed", 0) / finished > FAILURE_RATE:
            alerts.append(
                Alert(
                    "JobFailureRateHigh",
                    job_type,
                    f"{counts.get('failed', 0)} of {finished} runs failed in the last "
                    f"{FAILURE_WINDOW_S // 60} min (over {FAILURE_RATE:.0%}).",
                )
            )
    return alerts


def alerts_now(ops: Operations, queues: list[dict[str, Any]] | None = None) -> list[Alert]:
    return current_alerts(
        queues if queues is not None else ops.queues(), ops.run_outcomes(window_start(FAILURE_WINDOW_S))
    )


def _seconds(dialect: str, start: Any, end: Any) -> Any:
    """``end - start`` in seconds, as SQL."""
    if dialect == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


class QuestboardCollector:
    """Reads the current state at every scrape."""

    def __init__(self, ops: Operations, database_url: str) -> None:
        self.ops = ops
        self._sessions = get_sessionmaker(database_url)

    def collect(self) -> Iterator[Metric]:
        # Redis down: the database's numbers are still worth a scrape. questboard_redis_up says so (and
        # alerts), and the series read from Redis (queue depth, workers) are left out rather than faked.
        redis_up = GaugeMetricFamily("questboard_redis_up", "1 if Redis (broker, heartbeats) answered.")
        try:
            workers = self.ops.live_workers()
            queues = self.ops.queues(workers)
        except redis.RedisError:
            redis_up.add_metric([], 0)
            yield redis_up
            yield from self._queue_metrics(
                self.ops.queues_from_database(), fields=("latency_seconds", "paused")
            )
        else:
            redis_up.add_metric([], 1)
            yield redis_up
            yield from self._queue_metrics(queues)
            active = GaugeMetricFamily("questboard_workers_active", "Workers with a live heartbeat.")
            active.add_metric([], len(workers))
            yield active
        dead = GaugeMetricFamily("questboard_dead_letter_jobs", "Failed jobs waiting for an operator.")
        dead.add_metric([], sum(self.ops.failed_counts().values()))
        yield dead
        jobs = GaugeMetricFamily("questboard_jobs", "Jobs by type and status.", labels=["type", "status"])
        for job_type, counts in self.ops.stats()["by_type"].items():
            for status, n in counts.items():
                jobs.add_metric([job_type, status], n)
        yield jobs
        yield from self._run_metrics()

    @staticmethod
    def _queue_metrics(
        queues: list[dict[str, Any]],
        fields: tuple[str, ...] = ("depth", "latency_seconds", "paused", "workers"),
    ) -> Iterator[Metric]:
        families = {
            "depth": GaugeMetricFamily(
                "questboard_queue_depth",
                "Messages waiting in the queue's broker lists, plus jobs held for their fair-share turn.",
                labels=["queue"],
            ),
            "latency_seconds": GaugeMetricFamily(
                "questboard_queue_latency_seconds",
                "Seconds the oldest queued job of the queue has waited.",
                labels=["queue"],
            ),
            "paused": GaugeMetricFamily(
                "questboard_queue_paused", "1 while an operator has paused the queue.", labels=["queue"]
            ),
            "workers": GaugeMetricFamily(
                "questboard_queue_workers", "Live workers started for the queue.", labels=["queue"]
            ),
        }
        families = {field: families[field] for field in fields}
        for q in queues:
            for field, family in families.items():
                value = q[field]
                family.add_metric([q["name"]], len(value) if isinstance(value, list) else float(value))
        yield from families.values()

    def _run_metrics(self) -> Iterator[Metric]:
        outcomes = CounterMetricFamily(
            "questboard_job_runs",
            "Finished runs (attempts) by job type and outcome.",
            labels=["type", "outcome"],
        )
        retries = CounterMetricFamily(
            "questboard_job_retries", "Runs after a job's first attempt, by job type.", labels=["type"]
        )
        durations = HistogramMetricFamily(
            "questboard_job_duration_seconds",
            "How long finished runs took (succeeded or failed), by job type.",
            labels=["type"],
        )
        with self._sessions() as session:
            dialect = session.get_bind().dialect.name
            rows = session.execute(
                select(
                    Job.type,
                    JobAttempt.outcome,
                    func.count(),
                    func.sum(case((JobAttempt.number > 1, 1), else_=0)),
                )
                .join(Job, Job.id == JobAttempt.job_id)
                .where(JobAttempt.outcome.is_not(None))
                .group_by(Job.type, JobAttempt.outcome)
            )
            retry_counts: dict[str, int] = {}
            for job_type, outcome, count, later in rows:
                outcomes.add_metric([job_type, outcome], count)
                retry_counts[job_type] = retry_counts.get(job_type, 0) + int(later or 0)
            for job_type, count in sorted(retry_counts.items()):
                retries.add_metric([job_type], count)
            seconds = _seconds(dialect, JobAttempt.started_at, JobAttempt.finished_at)
            bucket_columns = [func.sum(case((seconds <= le, 1), else_=0)) for le in DURATION_BUCKETS_S]
            rows = session.execute(
                select(Job.type, func.count(), func.sum(seconds), *bucket_columns)
                .join(Job, Job.id == JobAttempt.job_id)
                .where(JobAttempt.outcome.in_(RUN_OUTCOMES), JobAttempt.finished_at.is_not(None))
                .group_by(Job.type)
            )
            for job_type, count, total, *cumulative in rows:
                buckets = [
                    (f"{le:g}", float(n or 0)) for le, n in zip(DURATION_BUCKETS_S, cumulative, strict=True)
                ]
                buckets.append(("+Inf", float(count)))
                durations.add_metric([job_type], buckets, float(total or 0.0))
        yield from (outcomes, retries, durations)


@bp.get("/metrics")
@api_user_required
def metrics() -> Any:
    if not (g.user.is_admin or g.user.is_viewer):
        return api_error(403, "forbidden", "This needs an admin (or viewer) token.")
    registry = CollectorRegistry(auto_describe=False)
    ops = operations()
    registry.register(QuestboardCollector(ops, ops.database_url))  # type: ignore[arg-type]
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)
