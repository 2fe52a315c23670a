# ruff: noqa: E501
"""P10 — fair share: one user's job start delay behind another user's 10,000-job backlog, on and off.

One worker on `default` with 2 processes (as `questboard up` runs the default pool). Per mode, with a fresh
database and Redis db: user A's `--backlog` waiting `diagnostics.probe` no-op jobs are bulk-inserted as
submits leave them (fair share on: held in the database, the first in-flight bound sent; off: every
message pipelined to Redis), the worker starts with QUESTBOARD_FAIR_SHARE set to the mode, and once 200
of them started:
  drain  A's start rate over `--window` seconds, nobody else waiting (single-user drain), and the
         worker's CPU per job over that window (main process + pool; steadier than a rate on a busy host)
  delay  user B submits one probe through JobService (the web's submit path, in-process, the same mode),
         `--probes` times 0.3 s apart (off: once; it waits for the whole backlog); delay = started_at -
         the clock just before the submit
Baselines in the same run: each figure with fair share off (QUESTBOARD_FAIR_SHARE=0: plain FIFO).

    python -m benchmarks.p10_fair_share [--backlog 10000] [--probes 5] [--window 10]
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from benchmarks import harness as h


def started_count(sessions: Any, user_id: int) -> int:
    from sqlalchemy import func, select

    from shared.models import Job

    with sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.user_id == user_id, Job.started_at.is_not(None))
            )
            or 0
        )


def submit_and_wait(jobs: Any, user: Any, sessions: Any, timeout_s: float, poll_s: float) -> float:
    from shared.models import Job

    t0 = time.time()
    data, _ = jobs.submit(user, "diagnostics.probe", {"steps": 1})

    def started() -> Any:
        with sessions() as session:
            job = session.get(Job, data["id"])
            return job.started_at if job is not None and job.started_at is not None else None

    return h.to_unix(h.wait_for(started, timeout_s, poll_s, what="B's job started")) - t0


def one_mode(stack: h.Stack, args: Any, redis_url: str, fair: bool) -> dict[str, Any]:
    from sqlalchemy import update

    from questboard.app import registry
    from shared import fairshare
    from shared.accounts import Accounts
    from shared.db import get_sessionmaker
    from shared.jobs import JobService
    from shared.models import Job
    from shared.publisher import SocketIOPublisher
    from shared.settings import get_settings
    from workers.dispatch import CeleryDispatcher

    mode = "on" if fair else "off"
    os.environ["QUESTBOARD_FAIR_SHARE"] = "1" if fair else "0"
    get_settings.cache_clear()
    db_url = stack.database_url(args.db, f"p10{mode}")
    (a_id, _), (b_id, _) = h.make_users(db_url, 2)
    user_b = Accounts(db_url).get_user(b_id)
    dispatcher = CeleryDispatcher(h.questboard_celery(redis_url))
    jobs = JobService(
        db_url,
        registry(),
        SocketIOPublisher(redis_url),
        dispatcher,
        user_job_limit=10**9,
        user_queued_limit=10**9,
    )
    sessions = get_sessionmaker(db_url)
    if fair:
        ids = h.insert_jobs(db_url, a_id, args.backlog)
        with sessions() as session:  # what the submits past the bound leave: held, no message
            session.execute(update(Job).values(held=True))
            session.commit()
        fairshare.refill(jobs.machine, "default")
    else:
        ids, _, _ = h.prefill_questboard(db_url, redis_url, a_id, args.backlog)
    env = stack.env(redis_url, db_url, QUESTBOARD_FAIR_SHARE=os.environ["QUESTBOARD_FAIR_SHARE"])
    worker = stack.questboard_worker(env, "default", 2, name=f"default-{mode}")

    def count() -> int:
        return started_count(sessions, a_id)

    h.wait_for(lambda: count() >= 200, 120, 0.2, what="the backlog draining")
    c0, t0, meter = count(), time.monotonic(), h.CpuMeter(h.redis.Redis.from_url(redis_url), worker)
    time.sleep(args.window)
    ran = count() - c0
    drain = ran / (time.monotonic() - t0)
    cpu = meter.per_job_ms(ran)
    probes = args.probes if fair else 1
    delays = []
    for _ in range(probes):
        # Off, the wait is the whole backlog: a coarser poll keeps this process off the CPU meanwhile.
        delays.append(submit_and_wait(jobs, user_b, sessions, 600, 0.005 if fair else 0.1))
        time.sleep(0.3)
    waiting = args.backlog - count()
    stack.stop(worker)
    h.log(
        f"fair share {mode}: drain {drain:.0f} jobs/s; B's job started after {1000 * h.median(delays):.0f} ms (p50 of {probes})"
    )
    return {
        "drain_jobs_per_s": drain,
        "cpu_ms_per_job": cpu,
        "worker_cpu_ms_per_job": cpu["worker_main"] + cpu["pool_children"],
        "delay_p50_ms": 1000 * h.median(delays),
        "delay_max_ms": 1000 * max(delays),
        "a_waiting_after": waiting,
        "jobs": len(ids),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = h.parser(__doc__.splitlines()[0], deadline_s=900, runs=1)
    p.add_argument("--backlog", type=int, default=10_000)
    p.add_argument("--probes", type=int, default=5)
    p.add_argument("--window", type=float, default=10.0)
    args = p.parse_args(argv)

    def body(stack: h.Stack) -> dict[str, Any]:
        redis_srv = stack.start_redis()
        h.set_broker_epoch(redis_srv.url)
        on = one_mode(stack, args, redis_srv.url, fair=True)
        redis_srv.client().flushdb()
        h.set_broker_epoch(redis_srv.url)
        off = one_mode(stack, args, redis_srv.url, fair=False)
        summary = {
            "backlog": args.backlog,
            "on_delay_p50_ms": on["delay_p50_ms"],
            "on_delay_max_ms": on["delay_max_ms"],
            "off_delay_ms": off["delay_p50_ms"],
            "delay_ratio_on_vs_off": on["delay_p50_ms"] / off["delay_p50_ms"],
            "on_drain_jobs_per_s": on["drain_jobs_per_s"],
            "off_drain_jobs_per_s": off["drain_jobs_per_s"],
            "drain_ratio_on_vs_off": on["drain_jobs_per_s"] / off["drain_jobs_per_s"],
            "on_worker_cpu_ms_per_job": on["worker_cpu_ms_per_job"],
            "off_worker_cpu_ms_per_job": off["worker_cpu_ms_per_job"],
            "cpu_ratio_on_vs_off": on["worker_cpu_ms_per_job"] / off["worker_cpu_ms_per_job"],
            "load_average_1m_at_end": os.getloadavg()[0],
        }
        return {"summary": summary, "per_mode": {"on": on, "off": off}}

    return h.run_benchmark("p10_fair_share", args, body)


if __name__ == "__main__":
    main(sys.argv[1:])
