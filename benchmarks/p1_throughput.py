"""P1 — drain throughput: N `diagnostics.probe` no-op jobs through Questboard vs N plain Celery no-op tasks.

Per run, on one private Redis, each system in turn (2 pool processes each, prefork, same worker flags):
  plain-tuned   plain Celery, acks_late + prefetch 1 (Questboard's pool settings)
  questboard    Questboard worker on `default,low` (state in the DB, progress published), as `questboard up`
  plain-default plain Celery prefork defaults (no acks_late, prefetch 4)
The queue is filled first (Questboard: job rows inserted in bulk, messages pipelined), then the worker is
started; throughput = N / (last task end - first task start), both read from task_prerun/task_postrun
in the pool processes (benchmarks.worker_probe), so worker start-up is not counted.

    python -m benchmarks.p1_throughput [--jobs 20000] [--runs 3] [--db sqlite|postgres]
"""

from __future__ import annotations

import sys
import time
from typing import Any

from benchmarks import harness as h

QB_QUEUES = ["default", "low"]


def drain_plain(
    stack: h.Stack,
    redis_url: str,
    n: int,
    tag: str,
    acks_late: bool,
    prefetch: int,
    timeout_s: float,
    events: bool = False,
    concurrency: int = 2,
    extra_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    client = h.redis.Redis.from_url(redis_url)
    client.flushall()
    push_s = h.push_messages(
        h.plain_celery(redis_url), "bench.noop", "bench", [(f"{tag}-{i}", [i]) for i in range(n)]
    )
    timing = stack.timing_dir(tag)
    before = h.commandstats(client)
    worker = stack.plain_worker(
        redis_url,
        "bench",
        concurrency,
        acks_late=acks_late,
        prefetch=prefetch,
        events=events,
        timing=timing,
        name=tag,
        extra_args=extra_args,
    )
    cpu = h.CpuMeter(client, worker)
    h.wait_drained(client, ["bench"], timeout_s, worker)
    cpu_ms = cpu.per_job_ms(n)
    stack.stop(worker)
    cmds = h.diff_stats(h.commandstats(client), before)
    t = h.read_timing(timing)
    if t["count"] != n:
        raise RuntimeError(f"{tag}: {t['count']} of {n} tasks ran")
    secs = t["last"] - t["first"]
    return {
        "jobs_per_s": n / secs,
        "seconds": secs,
        "push_s": push_s,
        "redis_calls_per_job": sum(cmds.values()) / n,
        "redis_commands_per_job": {
            k: round(v / n, 2) for k, v in sorted(cmds.items(), key=lambda kv: -kv[1])
        },
        "cpu_ms_per_job": cpu_ms,
    }


def drain_questboard(
    stack: h.Stack,
    redis_url: str,
    db_kind: str,
    n: int,
    tag: str,
    timeout_s: float,
    extra_env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
    include: tuple[str, ...] = ("benchmarks.worker_probe",),
    concurrency: int = 2,
    profile: Any = None,
    worker_pool: str = "prefork",
) -> dict[str, Any]:
    from sqlalchemy import func, select

    from shared.db import get_sessionmaker
    from shared.models import Job

    drain = h.prepare_drain(stack, redis_url, db_kind, n, tag)
    db_url, timing, insert_s, push_s = drain.db_url, drain.timing, drain.insert_s, drain.push_s
    client = h.redis.Redis.from_url(redis_url)
    before = h.commandstats(client)
    worker = stack.questboard_worker(
        drain.env,
        ",".join(QB_QUEUES),
        concurrency,
        name=tag,
        timing=timing,
        extra_env=extra_env,
        extra_args=extra_args,
        include=include,
        pool=worker_pool,
    )
    cpu = h.CpuMeter(client, worker)
    if profile is not None:
        profile.start(worker)
    h.wait_drained(client, QB_QUEUES, timeout_s, worker)
    cpu_ms = cpu.per_job_ms(n)
    if profile is not None:
        profile.stop()
    stack.stop(worker)
    cmds = h.diff_stats(h.commandstats(client), before)
    t = h.read_timing(timing)
    with get_sessionmaker(db_url)() as session:
        done, first_start, last_end = session.execute(
            select(func.count(), func.min(Job.started_at), func.max(Job.finished_at)).where(
                Job.status == "succeeded"
            )
        ).one()
    if done != n:
        raise RuntimeError(f"{tag}: {done} of {n} jobs succeeded")
    secs = t["last"] - t["first"]
    db_secs = h.to_unix(last_end) - h.to_unix(first_start)
    return {
        "jobs_per_s": n / secs,
        "seconds": secs,
        "jobs_per_s_db_clock": n / db_secs,
        "insert_s": insert_s,
        "push_s": push_s,
        "tasks_run": t["count"],
        "redis_calls_per_job": sum(cmds.values()) / n,
        "redis_commands_per_job": {
            k: round(v / n, 2) for k, v in sorted(cmds.items(), key=lambda kv: -kv[1])
        },
        "sql_per_job": {k: round(v / n, 2) for k, v in sorted(t["sql"].items())},
        "cpu_ms_per_job": cpu_ms,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = h.parser(__doc__.splitlines()[0], deadline_s=1500)
    p.add_argument("--jobs", type=int, default=20_000, help="jobs per system per run (default 20000)")
    args = p.parse_args(argv)
    n = args.jobs

    def body(stack: h.Stack) -> dict[str, Any]:
        redis_url = stack.start_redis().url
        runs: list[dict[str, Any]] = []
        timeout = max(120.0, n / 20)
        for r in range(args.runs):
            run: dict[str, Any] = {}
            h.log(f"run {r + 1}/{args.runs}: plain Celery acks_late+prefetch 1")
            run["plain_tuned"] = drain_plain(stack, redis_url, n, f"pt{r}", True, 1, timeout)
            h.log(f"  {run['plain_tuned']['jobs_per_s']:.0f} jobs/s; Questboard")
            run["questboard"] = drain_questboard(stack, redis_url, args.db, n, f"qb{r}", timeout)
            h.log(f"  {run['questboard']['jobs_per_s']:.0f} jobs/s; plain Celery defaults")
            run["plain_default"] = drain_plain(stack, redis_url, n, f"pd{r}", False, 4, timeout)
            h.log(f"  {run['plain_default']['jobs_per_s']:.0f} jobs/s")
            run["ratio_vs_tuned"] = run["questboard"]["jobs_per_s"] / run["plain_tuned"]["jobs_per_s"]
            run["ratio_vs_default"] = run["questboard"]["jobs_per_s"] / run["plain_default"]["jobs_per_s"]
            runs.append(run)
        med = {
            k: h.median(r[k]["jobs_per_s"] for r in runs)
            for k in ("questboard", "plain_tuned", "plain_default")
        }
        summary = {
            "jobs": n,
            "questboard_jobs_per_s": med["questboard"],
            "plain_tuned_jobs_per_s": med["plain_tuned"],
            "plain_default_jobs_per_s": med["plain_default"],
            # Median of the per-run ratios (each ratio is measured within one run).
            "ratio_vs_plain_same_pool": h.median(r["ratio_vs_tuned"] for r in runs),
            "ratio_shipped_vs_plain_defaults": h.median(r["ratio_vs_default"] for r in runs),
            "questboard_ms_per_job": 1000 * 2 / med["questboard"],
            "plain_tuned_ms_per_job": 1000 * 2 / med["plain_tuned"],
            "questboard_redis_calls_per_job": h.median(r["questboard"]["redis_calls_per_job"] for r in runs),
            "plain_tuned_redis_calls_per_job": h.median(
                r["plain_tuned"]["redis_calls_per_job"] for r in runs
            ),
            "questboard_sql_per_job": runs[-1]["questboard"]["sql_per_job"],
        }
        return {"summary": summary, "per_run": runs}

    return h.run_benchmark("p1_throughput", args, body)


if __name__ == "__main__":
    main(sys.argv[1:])
    time.sleep(0)
