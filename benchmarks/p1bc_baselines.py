"""P1b and P1c — Questboard's drain with a given pool configuration against two baselines, in one run.

Per run, each on its own fresh service (private Redis; fresh databases), in this order:
  procrastinate 2x1   procrastinate 3 (PostgreSQL-backed, durable per-job state), 2 worker processes x 1
  procrastinate 2x8   the same, 2 worker processes x concurrency 8
  questboard-pg       Questboard on PostgreSQL, the pool given by --pool/--workers/--concurrency
  questboard-sqlite   the same on SQLite
  plain-default       plain Celery prefork defaults, -c 2 (no acks_late, prefetch 4): P1b's baseline
Questboard is filled as in P1 (rows in bulk, messages pipelined) and timed the same way (first task start
to last task end, benchmarks.worker_probe). procrastinate's jobs are deferred in one batch before its
workers start; its drain is the first ``started`` to the last ``succeeded`` event in its own events table.

Ratios (each within one run): P1c = questboard-pg / procrastinate (both process counts) and
questboard-pg / questboard-sqlite; P1b = Questboard (PostgreSQL and SQLite) / plain-default.

    python -m benchmarks.p1bc_baselines [--jobs 3000] [--runs 3] [--pool prefork|threads]
        [--workers 1] [--concurrency 2]

Needs PostgreSQL (QUESTBOARD_TEST_PG) and procrastinate (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from typing import Any

from benchmarks import harness as h
from benchmarks.p1_throughput import QB_QUEUES, drain_plain
from questboard.testing import ManagedProcess

PROC_APP = "benchmarks.procrastinate_app.app"


def _pg_conninfo(name: str) -> str:
    return f"{h.PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def drain_procrastinate(
    stack: h.Stack, n: int, workers: int, concurrency: int, tag: str, timeout_s: float
) -> dict[str, Any]:
    import psycopg

    name = f"qb_bench_proc_{tag}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(h.PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    stack.pg_databases.append(name)  # dropped by Stack.close
    conninfo = _pg_conninfo(name)
    env = {**os.environ, "PYTHONPATH": str(h.REPO_ROOT), "BENCH_PG_CONNINFO": conninfo}
    cli = [sys.executable, "-m", "procrastinate", "--app", PROC_APP]
    schema = stack._track(ManagedProcess(f"proc-schema-{tag}", [*cli, "schema", "--apply"], env, stack.logs))
    schema.start()
    h.wait_for(lambda: not schema.alive(), 60, 0.1, what="procrastinate schema applied")
    # Defer every job in one batch from a child process (the app is configured from its environment).
    defer = stack._track(
        ManagedProcess(
            f"proc-defer-{tag}",
            [
                sys.executable,
                "-c",
                "from benchmarks.procrastinate_app import app, noop\n"
                "with app.open():\n"
                f"    noop.batch_defer(*({{'i': i}} for i in range({n})))\n",
            ],
            env,
            stack.logs,
        )
    )
    defer.start()
    h.wait_for(lambda: not defer.alive(), 120, 0.1, what="procrastinate jobs deferred")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        queued = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'").fetchone()[0]
        if queued != n:
            raise RuntimeError(f"{tag}: {queued} of {n} jobs deferred:\n{defer.output()[-2000:]}")
        procs = []
        for w in range(workers):
            proc = stack._track(
                ManagedProcess(
                    f"proc-worker-{tag}-{w}",
                    [*cli, "worker", "--name", f"{tag}-{w}", "--concurrency", str(concurrency)],
                    env,
                    stack.logs,
                )
            )
            proc.start()
            procs.append(proc)

        def done() -> bool:
            for proc in procs:
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} died:\n{proc.output()[-3000:]}")
            return (
                conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'").fetchone()[
                    0
                ]
                == n
            )

        h.wait_for(done, timeout_s, 0.1, what=f"{tag} drained")
        first, last = conn.execute(
            "SELECT extract(epoch FROM min(at) FILTER (WHERE type = 'started')),"
            " extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded')) FROM procrastinate_events"
        ).fetchone()
    for proc in procs:
        stack.stop(proc)
    secs = float(last) - float(first)
    return {"jobs_per_s": n / secs, "seconds": secs}


def drain_questboard(
    stack: h.Stack, redis_url: str, db_kind: str, n: int, tag: str, args: Any, timeout_s: float
) -> dict[str, Any]:
    drain = h.prepare_drain(stack, redis_url, db_kind, n, tag)
    workers = [
        stack.questboard_worker(
            drain.env,
            ",".join(QB_QUEUES),
            args.concurrency,
            name=f"{tag}-{w}",
            timing=drain.timing,
            extra_args=["--pool", args.pool],
        )
        for w in range(args.workers)
    ]
    h.wait_drained(h.redis.Redis.from_url(redis_url), QB_QUEUES, timeout_s, workers[0])
    for worker in workers:
        stack.stop(worker)
    t = h.read_timing(drain.timing)
    if (done := drain.succeeded()) != n:
        raise RuntimeError(f"{tag}: {done} of {n} jobs succeeded")
    secs = t["last"] - t["first"]
    return {"jobs_per_s": n / secs, "seconds": secs}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = h.parser(__doc__.splitlines()[0], deadline_s=1200)
    p.add_argument("--jobs", type=int, default=3000, help="jobs per system per run (default 3000)")
    p.add_argument("--pool", choices=["prefork", "threads"], default="prefork", help="Questboard's pool")
    p.add_argument("--workers", type=int, default=1, help="Questboard worker processes (default 1)")
    p.add_argument("--concurrency", type=int, default=2, help="pool size per Questboard worker (default 2)")
    args = p.parse_args(argv)
    n = args.jobs
    if importlib.util.find_spec("procrastinate") is None:  # its schema step would fail in a child
        raise SystemExit("p1bc needs procrastinate, its baseline: pip install -e '.[bench]'")

    def body(stack: h.Stack) -> dict[str, Any]:
        redis_url = stack.start_redis().url
        timeout = max(300.0, n / 5)  # a shared machine can be very slow
        runs: list[dict[str, Any]] = []
        for r in range(args.runs):
            run: dict[str, Any] = {}
            h.log(f"run {r + 1}/{args.runs}: procrastinate 2x1")
            run["procrastinate_2x1"] = drain_procrastinate(stack, n, 2, 1, f"p1x{r}", timeout)
            h.log(f"  {run['procrastinate_2x1']['jobs_per_s']:.0f} jobs/s; procrastinate 2x8")
            run["procrastinate_2x8"] = drain_procrastinate(stack, n, 2, 8, f"p8x{r}", timeout)
            h.log(f"  {run['procrastinate_2x8']['jobs_per_s']:.0f} jobs/s; Questboard on PostgreSQL")
            run["questboard_pg"] = drain_questboard(stack, redis_url, "postgres", n, f"qp{r}", args, timeout)
            h.log(f"  {run['questboard_pg']['jobs_per_s']:.0f} jobs/s; Questboard on SQLite")
            run["questboard_sqlite"] = drain_questboard(
                stack, redis_url, "sqlite", n, f"qs{r}", args, timeout
            )
            h.log(f"  {run['questboard_sqlite']['jobs_per_s']:.0f} jobs/s; plain Celery defaults -c 2")
            run["plain_default"] = drain_plain(stack, redis_url, n, f"pd{r}", False, 4, timeout)
            h.log(f"  {run['plain_default']['jobs_per_s']:.0f} jobs/s")
            qp, qs = run["questboard_pg"]["jobs_per_s"], run["questboard_sqlite"]["jobs_per_s"]
            run["p1c_pg_vs_procrastinate_2x1"] = qp / run["procrastinate_2x1"]["jobs_per_s"]
            run["p1c_pg_vs_procrastinate_2x8"] = qp / run["procrastinate_2x8"]["jobs_per_s"]
            run["p1c_pg_vs_sqlite"] = qp / qs
            run["p1b_sqlite_vs_plain_default"] = qs / run["plain_default"]["jobs_per_s"]
            run["p1b_pg_vs_plain_default"] = qp / run["plain_default"]["jobs_per_s"]
            runs.append(run)
        systems = (
            "procrastinate_2x1",
            "procrastinate_2x8",
            "questboard_pg",
            "questboard_sqlite",
            "plain_default",
        )
        ratios = [k for k in runs[0] if k.startswith(("p1b_", "p1c_"))]
        summary: dict[str, Any] = {
            "jobs": n,
            "questboard_pool": f"{args.workers} worker(s) x {args.pool} -c {args.concurrency}",
            **{f"{k}_jobs_per_s": h.median(r[k]["jobs_per_s"] for r in runs) for k in systems},
            **{k: h.median(r[k] for r in runs) for k in ratios},
        }
        return {"summary": summary, "per_run": runs}

    return h.run_benchmark("p1bc_baselines", args, body)


if __name__ == "__main__":
    main(sys.argv[1:])
