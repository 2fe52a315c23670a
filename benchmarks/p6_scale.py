# ruff: noqa: E501
"""P6 — scale: Questboard throughput with 1k vs 100k jobs already waiting.

How the backlog is made fast: job rows are inserted in bulk through SQLAlchemy Core (one multi-row INSERT
per 5,000 rows, `harness.insert_jobs`), then one message per job is sent with Questboard's own Celery app
(`send_task`, the message JobService sends) inside kombu's `Producer.batch()`, which pipelines the LPUSHes
(one Redis round trip per 1,000 messages, `harness.push_messages`): 100k jobs take ~10 s + ~20 s.

Each trial starts one worker on default,low (2 processes, as `questboard up`) with the backlog waiting
(database and Redis), lets it finish `--window-end` jobs and stops it; throughput = jobs finished between
the `--window-start`-th and the `--window-end`-th finish (by finished_at) / the time between them.
  1k    a fresh database and Redis db holding 1,000 waiting jobs, per trial
  100k  one database and Redis db filled once with 100,000 waiting jobs; trials run one after another
        on what is left (>= 97k waiting at every start)

    python -m benchmarks.p6_scale [--runs 3] [--big 100000] [--small 1000]
"""

from __future__ import annotations

import sys
import time
from typing import Any

from benchmarks import harness as h


def trial(
    stack: h.Stack, env: dict[str, str], db_url: str, tag: str, a: Any, started_after: float
) -> dict[str, float]:
    from sqlalchemy import func, select

    from shared.db import get_sessionmaker
    from shared.models import Job

    sessions = get_sessionmaker(db_url)
    client = h.redis.Redis.from_url(env["REDIS_URL"])
    waiting = client.llen("default")

    def finished() -> int:  # counted through the status index (cheap beside a 100k-row table)
        with sessions() as session:
            return session.scalar(select(func.count()).select_from(Job).where(Job.status == "succeeded"))

    before = finished()
    worker = stack.questboard_worker(env, "default,low", 2, name=tag, include=())
    h.wait_for(
        lambda: finished() - before >= a.window_end, 600, 0.5, what=f"{tag}: {a.window_end} jobs finished"
    )
    stack.stop(worker)
    stack.procs.remove(worker)
    with sessions() as session:
        ends = sorted(
            h.to_unix(t)
            for t in session.scalars(
                select(Job.finished_at).where(
                    Job.status == "succeeded", Job.finished_at > h_dt(started_after)
                )
            )
        )
    lo, hi = ends[a.window_start - 1], ends[a.window_end - 1]
    return {"jobs_per_s": (a.window_end - a.window_start) / (hi - lo), "waiting_at_start": waiting}


def h_dt(ts: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = h.parser(__doc__.splitlines()[0], deadline_s=900)
    p.add_argument("--big", type=int, default=100_000)
    p.add_argument("--small", type=int, default=1_000)
    p.add_argument("--window-start", type=int, default=100)
    p.add_argument("--window-end", type=int, default=900)
    args = p.parse_args(argv)
    assert args.window_end <= args.small

    def body(stack: h.Stack) -> dict[str, Any]:
        redis_srv = stack.start_redis()
        base = redis_srv.url.rsplit("/", 1)[0]
        big_redis, small_redis = f"{base}/1", f"{base}/0"
        h.set_broker_epoch(big_redis)
        big_db = stack.database_url(args.db, "big")
        [(uid, _)] = h.make_users(big_db, 1)
        h.log(f"filling {args.big} jobs")
        _ids, insert_s, push_s = h.prefill_questboard(big_db, big_redis, uid, args.big, "default")
        h.log(f"  rows {insert_s:.1f} s, messages {push_s:.1f} s")
        big_env = stack.env(big_redis, big_db)
        runs = []
        for r in range(args.runs):
            h.redis.Redis.from_url(small_redis).flushdb()
            h.set_broker_epoch(small_redis)
            small_db = stack.database_url(args.db, f"small{r}")
            [(suid, _)] = h.make_users(small_db, 1)
            h.prefill_questboard(small_db, small_redis, suid, args.small, "default")
            small = trial(stack, stack.env(small_redis, small_db), small_db, f"small{r}", args, time.time())
            big = trial(stack, big_env, big_db, f"big{r}", args, time.time())
            run = {"small": small, "big": big, "ratio": big["jobs_per_s"] / small["jobs_per_s"]}
            h.log(
                f"run {r + 1}: {small['waiting_at_start']} waiting: {small['jobs_per_s']:.0f} jobs/s; "
                f"{big['waiting_at_start']} waiting: {big['jobs_per_s']:.0f} jobs/s (ratio {run['ratio']:.2f})"
            )
            runs.append(run)
        summary = {
            "small_jobs_per_s": h.median(r["small"]["jobs_per_s"] for r in runs),
            "big_jobs_per_s": h.median(r["big"]["jobs_per_s"] for r in runs),
            "ratio_big_vs_small": h.median(r["ratio"] for r in runs),
            "big_backlog": args.big,
            "small_backlog": args.small,
            "fill_rows_s": insert_s,
            "fill_messages_s": push_s,
        }
        return {"summary": summary, "per_run": runs}

    return h.run_benchmark("p6_scale", args, body)


if __name__ == "__main__":
    main(sys.argv[1:])
