# ruff: noqa: E501
"""P4 — priority: start delay of a critical job behind 10,000 queued low jobs.

Workers as `questboard up` runs them: one pool on critical,high and one on default,low, 2 processes each.
Per run: the low queue is topped up to `--backlog` waiting `diagnostics.probe` jobs (rows in bulk,
messages pipelined) while the workers run, then `--probes` critical probes are submitted one by one
through JobService (the web's submit path, in-process) 0.3 s apart; delay = started_at - the clock just
before submit. Baselines in the same run, same Redis:
  idle   the same critical submit with no backlog (before the backlog is added)
  plain  plain Celery, one 2-process pool consuming critical,low (acks_late, prefetch 1) behind the same
         number of low no-op tasks; a `bench.mark` task to critical records when it starts

    python -m benchmarks.p4_priority [--runs 3] [--backlog 10000]
"""

from __future__ import annotations

import sys
import time
from typing import Any

from benchmarks import harness as h


def submit_critical(jobs: Any, user: Any, sessions: Any) -> float:
    from shared.models import Job

    t0 = time.time()
    # Above the probe's own queue: the system's path (admins and the system may use critical).
    data, _ = jobs.submit(user, "diagnostics.probe", {"steps": 1}, queue="critical", system=True)

    def started() -> Any:
        with sessions() as session:
            job = session.get(Job, data["id"])
            return job.started_at if job is not None and job.started_at is not None else None

    return h.to_unix(h.wait_for(started, 30, 0.005, what="critical job started")) - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = h.parser(__doc__.splitlines()[0], deadline_s=600)
    p.add_argument("--backlog", type=int, default=10_000)
    p.add_argument("--probes", type=int, default=5)
    args = p.parse_args(argv)

    def body(stack: h.Stack) -> dict[str, Any]:
        from shared.accounts import Accounts
        from shared.db import get_sessionmaker

        redis_srv = stack.start_redis()
        client = redis_srv.client()
        h.set_broker_epoch(redis_srv.url)
        db_url = stack.database_url(args.db, "p4")
        [(uid, _token)] = h.make_users(db_url, 1)
        user = Accounts(db_url).get_user(uid)
        env = stack.env(redis_srv.url, db_url)
        stack.questboard_worker(env, "critical,high", 2, name="critical-high")
        stack.questboard_worker(env, "default,low", 2, name="default-low")
        jobs = h.questboard_jobs(redis_srv.url, db_url)
        sessions = get_sessionmaker(db_url)
        plain_url = redis_srv.url.rsplit("/", 1)[0] + "/2"
        plain_client = h.redis.Redis.from_url(plain_url)
        plain_app = h.plain_celery(plain_url)
        stack.plain_worker(plain_url, "critical,low", 2, acks_late=True, prefetch=1, name="plain")
        submit_critical(jobs, user, sessions)  # warm-up
        runs = []
        for r in range(args.runs):
            idle = [submit_critical(jobs, user, sessions) for _ in range(args.probes)]
            waiting = client.llen("low")
            add = max(0, args.backlog - waiting)
            h.prefill_questboard(db_url, redis_srv.url, uid, add, "low")
            depth = client.llen("low")
            behind = []
            for _ in range(args.probes):
                behind.append(submit_critical(jobs, user, sessions))
                time.sleep(0.3)
            # plain Celery behind the same backlog
            p_wait = plain_client.llen("low")
            h.push_messages(
                plain_app,
                "bench.noop",
                "low",
                [(f"p4-{r}-{i}", [i]) for i in range(max(0, args.backlog - p_wait))],
            )
            p_depth = plain_client.llen("low")
            plain = []
            for i in range(args.probes):
                key = f"p4-{r}-{i}-{time.time()}"
                t0 = time.time()
                plain_app.send_task("bench.mark", args=[key], queue="critical", routing_key="critical")
                started = h.wait_for(
                    lambda k=key: plain_client.lindex(f"bench:start:{k}", 0), 30, 0.005, what="plain mark"
                )
                plain.append(float(started) - t0)
                time.sleep(0.3)
            run = {
                "low_waiting_at_submit": depth,
                "plain_low_waiting_at_submit": p_depth,
                "behind_backlog_p50_ms": 1000 * h.median(behind),
                "behind_backlog_max_ms": 1000 * max(behind),
                "idle_p50_ms": 1000 * h.median(idle),
                "plain_behind_backlog_p50_ms": 1000 * h.median(plain),
            }
            run["ratio_vs_idle"] = run["behind_backlog_p50_ms"] / run["idle_p50_ms"]
            run["ratio_vs_plain"] = run["behind_backlog_p50_ms"] / run["plain_behind_backlog_p50_ms"]
            h.log(
                f"run {r + 1}: {depth} low waiting: critical starts after {run['behind_backlog_p50_ms']:.1f} ms "
                f"(idle {run['idle_p50_ms']:.1f} ms, plain {run['plain_behind_backlog_p50_ms']:.1f} ms)"
            )
            runs.append(run)
            h.wait_for(lambda: plain_client.llen("low") == 0, 120, 0.1, what="plain backlog drained")
        summary = {k: h.median(r[k] for r in runs) for k in runs[0]}
        summary["backlog"] = args.backlog
        return {"summary": summary, "per_run": runs}

    return h.run_benchmark("p4_priority", args, body)


if __name__ == "__main__":
    main(sys.argv[1:])
