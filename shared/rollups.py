"""Rollups of finished runs for the console's 24 h charts, kept in the database (``job_rollups``).

Per queue (and ``"*"`` for every queue) and per bucket: runs that succeeded and failed, and the p50/p95 of
the wait before a job's first run and of run time. Minute buckets serve the last hour, 15-minute buckets
the rest of the day. The workers' maintenance loop recomputes the recent buckets from ``job_attempts``
(idempotent: a bucket is replaced whole), so the charts need no Redis and survive its restart.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError

from shared import defaults
from shared.db import get_sessionmaker
from shared.models import Job, JobAttempt, JobRollup, utcnow

ALL_QUEUES = "*"
FINE_S, COARSE_S = defaults.ROLLUP_FINE_BUCKET_S, defaults.ROLLUP_COARSE_BUCKET_S
OUTCOMES = ("succeeded", "failed")


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (0-100) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def floor_to(moment: datetime, bucket_s: int) -> datetime:
    return datetime.fromtimestamp(int(moment.timestamp()) // bucket_s * bucket_s, UTC)


def _ms(value: float | None) -> int | None:
    return None if value is None else round(value * 1000)


class Rollups:
    def __init__(self, database_url: str) -> None:
        self._sessions = get_sessionmaker(database_url)

    def refresh(self, now: datetime | None = None, span_s: int = defaults.ROLLUP_RECOMPUTE_S) -> int:
        """Recompute every bucket that overlaps the last ``span_s`` seconds (an empty table: the whole
        day). Returns how many bucket rows were written."""
        now = now or utcnow()
        with self._sessions() as session:
            if session.scalar(select(func.count()).select_from(JobRollup)) == 0:
                span_s = defaults.ROLLUP_WINDOW_S
        written = 0
        for bucket_s in (FINE_S, COARSE_S):
            start = floor_to(now - timedelta(seconds=span_s), bucket_s)
            if bucket_s == FINE_S:
                start = max(start, floor_to(now - timedelta(seconds=defaults.ROLLUP_FINE_WINDOW_S), COARSE_S))
            end = floor_to(now, bucket_s) + timedelta(seconds=bucket_s)
            written += self._rebuild(bucket_s, start, end, now)
        with self._sessions() as session:  # older than the charts show: gone
            session.execute(delete(JobRollup).where(JobRollup.bucket_start < now - timedelta(days=2)))
            session.commit()
        return written

    def _rebuild(self, bucket_s: int, start: datetime, end: datetime, now: datetime) -> int:
        counts: dict[tuple[datetime, str], dict[str, int]] = defaultdict(lambda: {o: 0 for o in OUTCOMES})
        runs: dict[tuple[datetime, str], list[float]] = defaultdict(list)
        waits: dict[tuple[datetime, str], list[float]] = defaultdict(list)
        with self._sessions() as session:
            rows = session.execute(
                select(
                    JobAttempt.number,
                    JobAttempt.started_at,
                    JobAttempt.finished_at,
                    JobAttempt.outcome,
                    Job.queue,
                    Job.created_at,
                    Job.scheduled_at,
                )
                .join(Job, Job.id == JobAttempt.job_id)
                .where(
                    or_(
                        (JobAttempt.finished_at >= start) & (JobAttempt.finished_at < end),
                        (JobAttempt.number == 1)
                        & (JobAttempt.started_at >= start)
                        & (JobAttempt.started_at < end),
                    )
                )
            )
            for number, started, finished, outcome, queue, created, scheduled in rows:
                for q in (queue, ALL_QUEUES):
                    if finished is not None and start <= finished < end and outcome in OUTCOMES:
                        key = (floor_to(finished, bucket_s), q)
                        counts[key][outcome] += 1
                        runs[key].append(max(0.0, (finished - started).total_seconds()))
                    if number == 1 and start <= started < end:
                        ready = scheduled if scheduled is not None and scheduled <= started else created
                        key = (floor_to(started, bucket_s), q)
                        _ = counts[key]  # a bucket with waits but no finished run yet
                        waits[key].append(max(0.0, (started - ready).total_seconds()))
            fresh = [
                JobRollup(
                    bucket_s=bucket_s,
                    bucket_start=when,
                    queue=q,
                    succeeded=c["succeeded"],
                    failed=c["failed"],
                    wait_p50_ms=_ms(percentile(waits[(when, q)], 50)),
                    wait_p95_ms=_ms(percentile(waits[(when, q)], 95)),
                    run_p50_ms=_ms(percentile(runs[(when, q)], 50)),
                    run_p95_ms=_ms(percentile(runs[(when, q)], 95)),
                    computed_at=now,
                )
                for (when, q), c in counts.items()
            ]
            session.execute(
                delete(JobRollup).where(
                    JobRollup.bucket_s == bucket_s,
                    JobRollup.bucket_start >= start,
                    JobRollup.bucket_start < end,
                )
            )
            session.add_all(fresh)
            try:
                session.commit()
            except IntegrityError:  # another worker rebuilt the same buckets at the same moment
                session.rollback()
                return 0
        return len(fresh)

    def series(self, queue: str = ALL_QUEUES, now: datetime | None = None) -> dict[str, list[Any]]:
        """The last 24 h of one queue for the charts: 15-minute buckets, then minute buckets for the last
        hour. ``t`` is each bucket's start (unix seconds); times are seconds; None where nothing ran."""
        now = now or utcnow()
        fine_start = floor_to(now - timedelta(seconds=defaults.ROLLUP_FINE_WINDOW_S), COARSE_S)
        day_start = floor_to(now - timedelta(seconds=defaults.ROLLUP_WINDOW_S), COARSE_S)
        slots = [
            (day_start + timedelta(seconds=i * COARSE_S), COARSE_S)
            for i in range(int((fine_start - day_start).total_seconds()) // COARSE_S)
        ]
        fine_end = floor_to(now, FINE_S)
        slots += [
            (fine_start + timedelta(seconds=i * FINE_S), FINE_S)
            for i in range(int((fine_end - fine_start).total_seconds()) // FINE_S + 1)
        ]
        with self._sessions() as session:
            rows = session.scalars(
                select(JobRollup).where(JobRollup.queue == queue, JobRollup.bucket_start >= day_start)
            )
            found = {(r.bucket_start, r.bucket_s): r for r in rows}
        keys = ("succeeded", "failed", "wait_p50", "wait_p95", "run_p50", "run_p95")
        out: dict[str, list[Any]] = {"t": [], **{k: [] for k in keys}}
        for when, size in slots:
            row = found.get((when, size))
            out["t"].append(int(when.timestamp()))
            out["succeeded"].append(row.succeeded if row else 0)
            out["failed"].append(row.failed if row else 0)
            for k in keys[2:]:
                value = getattr(row, f"{k}_ms") if row else None
                out[k].append(None if value is None else value / 1000)
        return out
