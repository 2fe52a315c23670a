"""Redis commands per no-op job: Questboard against plain Celery with the same pool (INFO commandstats).

Per run and system, on a fresh private redis-server: the worker(s) start, a warm-up of jobs runs and is
left out, then the idle rate of commands (heartbeats, maintenance, BRPOP timeouts: what is per second,
not per job) is measured over ``--idle`` seconds after a ``CONFIG RESETSTAT``; then, after another
``CONFIG RESETSTAT``, N jobs are submitted one at a time the way each system submits (plain Celery:
``send_task``; Questboard: ``JobService.submit``, what ``POST /api/jobs`` calls after its checks, so the
submit's own publish and send are counted) while the workers run them; the window ends when the queues
and the unacked set are empty. Per job = (commands in the window − idle rate × window length) / N,
shown per command; the raw figure (nothing subtracted) is reported too. The drain poller's own commands
(LLEN, HLEN, INFO, CONFIG) are left out.

    python -m benchmarks.redis_commands [--jobs 2000] [--runs 3] [--pool prefork|threads]
        [--workers 1] [--concurrency 2] [--db sqlite|postgres]
"""

from __future__ import annotations

import sys
import time
from typing import Any

from benchmarks import harness as h

QB_QUEUES = ["default", "low"]
EXCLUDED = h.POLLER_COMMANDS | {"config"}


def _stats(client: h.redis.Redis) -> dict[str, int]:
    return {k: v for k, v in h.commandstats(client).items() if k not in EXCLUDED}


def _window(
    client: h.redis.Redis, queues: list[str], submit: Any, n: int, idle_s: float, timeout_s: float
) -> dict[str, Any]:
    """Idle rate, then N submissions drained: per-command counts per job."""
    client.config_resetstat()
    t0 = time.monotonic()
    deadline = t0 + idle_s
    h.wait_for(lambda: time.monotonic() >= deadline, idle_s + 5, 0.2, what="idle window")
    idle = _stats(client)
    idle_secs = time.monotonic() - t0
    client.config_resetstat()
    t0 = time.monotonic()
    for i in range(n):
        submit(i)
    h.wait_drained(client, queues, timeout_s)
    window = _stats(client)
    secs = time.monotonic() - t0
    per_job = {}
    for cmd in sorted(set(window) | set(idle)):
        raw = window.get(cmd, 0)
        corrected = raw - idle.get(cmd, 0) / idle_secs * secs
        per_job[cmd] = {"raw": round(raw / n, 3), "per_job": round(corrected / n, 3)}
    return {
        "per_job_total": round(sum(v["per_job"] for v in per_job.values()), 2),
        "raw_per_job_total": round(sum(window.values()) / n, 2),
        "idle_commands_per_s": round(sum(idle.values()) / idle_secs, 2),
        "window_s": round(secs, 2),
        "commands": dict(sorted(per_job.items(), key=lambda kv: -kv[1]["per_job"])),
    }


def measure_plain(stack: h.Stack, args: Any, n: int, tag: str) -> dict[str, Any]:
    server = stack.start_redis()
    client = server.client()
    app = h.plain_celery(server.url)
    for w in range(args.workers):
        stack.plain_worker(
            server.url,
            "bench",
            args.concurrency,
            acks_late=True,
            prefetch=1,
            name=f"{tag}-{w}",
            extra_args=["--pool", args.pool],
        )

    def submit(i: int) -> None:
        app.send_task("bench.noop", args=[i], queue="bench", routing_key="bench")

    for i in range(args.warmup):
        submit(i)
    h.wait_drained(client, ["bench"], 60)
    result = _window(client, ["bench"], submit, n, args.idle, max(60.0, n / 20))
    for proc in [p for p in stack.procs if p.alive()]:
        stack.stop(proc)
    server.stop()
    return result


def measure_questboard(stack: h.Stack, args: Any, n: int, tag: str) -> dict[str, Any]:
    from sqlalchemy import func, select

    from shared.accounts import Accounts
    from shared.db import get_sessionmaker
    from shared.models import Job

    server = stack.start_redis()
    client = server.client()
    h.set_broker_epoch(server.url)
    db_url = stack.database_url(args.db, tag)
    [(uid, _token)] = h.make_users(db_url, 1)
    user = Accounts(db_url).get_user(uid)
    env = stack.env(server.url, db_url)
    for w in range(args.workers):
        stack.questboard_worker(
            env,
            ",".join(QB_QUEUES),
            args.concurrency,
            name=f"{tag}-{w}",
            extra_args=["--pool", args.pool],
        )
    jobs = h.questboard_jobs(server.url, db_url)

    def submit(i: int) -> None:
        jobs.submit(user, "diagnostics.probe", dict(h.PROBE_PARAMS))

    for i in range(args.warmup):
        submit(i)
    h.wait_drained(client, QB_QUEUES, 60)
    result = _window(client, QB_QUEUES, submit, n, args.idle, max(60.0, n / 10))
    with get_sessionmaker(db_url)() as session:
        done = session.scalar(select(func.count()).where(Job.status == "succeeded"))
    if done != n + args.warmup:
        raise RuntimeError(f"{tag}: {done} of {n + args.warmup} jobs succeeded")
    for proc in [p for p in stack.procs if p.alive()]:
        stack.stop(proc)
    server.stop()
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = h.parser(__doc__.splitlines()[0], deadline_s=900)
    p.add_argument("--jobs", type=int, default=2000, help="measured jobs per system per run (default 2000)")
    p.add_argument("--warmup", type=int, default=50, help="jobs run before the window (default 50)")
    p.add_argument("--idle", type=float, default=5.0, help="seconds of the idle-rate window (default 5)")
    p.add_argument("--pool", choices=["prefork", "threads"], default="prefork")
    p.add_argument("--workers", type=int, default=1, help="worker processes per system (default 1)")
    p.add_argument("--concurrency", type=int, default=2, help="pool size per worker (default 2)")
    args = p.parse_args(argv)

    def body(stack: h.Stack) -> dict[str, Any]:
        runs = []
        for r in range(args.runs):
            h.log(f"run {r + 1}/{args.runs}: plain Celery")
            plain = measure_plain(stack, args, args.jobs, f"rp{r}")
            h.log(f"  {plain['per_job_total']} commands/job; Questboard")
            qb = measure_questboard(stack, args, args.jobs, f"rq{r}")
            h.log(f"  {qb['per_job_total']} commands/job")
            runs.append(
                {"plain": plain, "questboard": qb, "extra": qb["per_job_total"] - plain["per_job_total"]}
            )
        last = runs[-1]
        summary = {
            "jobs": args.jobs,
            "pool": f"{args.workers} worker(s) x {args.pool} -c {args.concurrency}",
            "plain_commands_per_job": h.median(r["plain"]["per_job_total"] for r in runs),
            "questboard_commands_per_job": h.median(r["questboard"]["per_job_total"] for r in runs),
            "questboard_minus_plain": h.median(r["extra"] for r in runs),
            "plain_raw_per_job": h.median(r["plain"]["raw_per_job_total"] for r in runs),
            "questboard_raw_per_job": h.median(r["questboard"]["raw_per_job_total"] for r in runs),
            "plain_by_command": {k: v["per_job"] for k, v in last["plain"]["commands"].items()},
            "questboard_by_command": {k: v["per_job"] for k, v in last["questboard"]["commands"].items()},
        }
        return {"summary": summary, "per_run": runs}

    return h.run_benchmark("redis_commands", args, body)


if __name__ == "__main__":
    main(sys.argv[1:])
