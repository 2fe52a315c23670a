"""P1 with a threads pool — group commit on and off, beside plain Celery with the same pool.

Per run, on one private Redis, each in turn (one worker process, `-P threads -c 8`, same worker flags):
  plain         plain Celery, acks_late + prefetch 1 (Questboard's pool settings), threads pool
  qb-direct     Questboard, QUESTBOARD_GROUP_COMMIT=0 (every move its own transaction), on SQLite
  qb-group      Questboard, group commit on (the default), on SQLite
  pg-direct     as qb-direct, on PostgreSQL
  pg-group      as qb-group, on PostgreSQL
Throughput as in P1 (benchmarks.p1_throughput): N / (last task end - first task start), from the probe.

    python -m benchmarks.p1_group_commit [--jobs 5000] [--runs 2] [--threads 8]
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks import harness as h
from benchmarks.p1_throughput import drain_plain, drain_questboard

SYSTEMS = {  # tag -> (database, group commit on)
    "qb-direct": ("sqlite", False),
    "qb-group": ("sqlite", True),
    "pg-direct": ("postgres", False),
    "pg-group": ("postgres", True),
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = h.parser(__doc__.splitlines()[0], deadline_s=1200, runs=2)
    p.add_argument("--jobs", type=int, default=5000, help="jobs per system per run (default 5000)")
    p.add_argument("--threads", type=int, default=8, help="threads of the one worker process (default 8)")
    args = p.parse_args(argv)
    n, c = args.jobs, args.threads
    pool = ("-P", "threads")

    def body(stack: h.Stack) -> dict[str, Any]:
        redis_url = stack.start_redis().url
        runs: list[dict[str, Any]] = []
        timeout = max(120.0, n / 20)
        for r in range(args.runs):
            run: dict[str, Any] = {}
            h.log(f"run {r + 1}/{args.runs}: plain Celery, threads x{c}")
            run["plain"] = drain_plain(
                stack, redis_url, n, f"pl{r}", True, 1, timeout, concurrency=c, extra_args=pool
            )
            h.log(f"  {run['plain']['jobs_per_s']:.0f} jobs/s")
            for tag, (db, group) in SYSTEMS.items():
                env = {"QUESTBOARD_GROUP_COMMIT": "1" if group else "0"}
                run[tag] = drain_questboard(
                    stack,
                    redis_url,
                    db,
                    n,
                    f"{tag}{r}",
                    timeout,
                    env,
                    pool,
                    concurrency=c,
                    worker_pool="threads",
                )
                run[f"{tag}_ratio"] = run[tag]["jobs_per_s"] / run["plain"]["jobs_per_s"]
                h.log(f"  {tag}: {run[tag]['jobs_per_s']:.0f} jobs/s ({run[f'{tag}_ratio']:.2f}x plain)")
            runs.append(run)
        summary: dict[str, Any] = {"jobs": n, "pool": f"threads x{c}"}
        summary["plain_jobs_per_s"] = h.median(r["plain"]["jobs_per_s"] for r in runs)
        for tag in SYSTEMS:
            summary[f"{tag}_jobs_per_s"] = h.median(r[tag]["jobs_per_s"] for r in runs)
            summary[f"{tag}_ratio_vs_plain"] = h.median(r[f"{tag}_ratio"] for r in runs)
            summary[f"{tag}_cpu_ms_per_job"] = h.median(r[tag]["cpu_ms_per_job"]["worker_main"] for r in runs)
        return {"summary": summary, "per_run": runs}

    return h.run_benchmark("p1_group_commit", args, body)


if __name__ == "__main__":
    main(sys.argv[1:])
