"""P5 — recovery: SIGKILL a worker mid-job; time until the job runs again.

Questboard: two workers on default,low (2 processes each, as `questboard up` starts a pool). A probe that
takes 30 s is submitted; once it runs:
  child   SIGKILL to the process running it (a crash of the job's process: on a threads pool, the
          worker's main process, so the worker goes too);
  worker  SIGKILL to the whole worker that runs it (main process and pool: a lost host/container);
time = started_at of attempt 2 (job_attempts) - time of the kill. The killed worker is started again
before the next trial.
Baseline, plain Celery with acks_late (prefetch 1, 2 workers x 2 processes, default visibility timeout):
a `bench.sleep` task that records each start is killed the same two ways, all trials at once on their
own queues, and waited for up to `--cap` seconds: ">= cap" means it did not run again within the cap.

    python -m benchmarks.p5_recovery [--runs 3] [--cap 150]
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from benchmarks import harness as h


def questboard_trial(
    stack: h.Stack,
    env: dict[str, str],
    workers: dict[str, Any],
    jobs: Any,
    user: Any,
    sessions: Any,
    how: str,
    cap: float,
) -> float:
    from sqlalchemy import select

    from shared.models import Job, JobAttempt

    # 30 s in 300 steps: the cancel after the trial stops it at a progress point (one 30 s step ignores the
    # cancel, so its worker recycles itself to end it, and this benchmark would have one worker less).
    data, _ = jobs.submit(user, "diagnostics.probe", {"steps": 300, "step_ms": 100})

    def running() -> Any:
        with sessions() as session:
            job = session.get(Job, data["id"])
            return job if job is not None and job.status == "running" and job.worker_pid else None

    job = h.wait_for(running, 30, 0.01, what="probe running")
    name = job.worker.split("@", 1)[0]
    t_kill = time.time()
    if how == "child":
        os.kill(job.worker_pid, signal.SIGKILL)  # a pool process of a worker this benchmark started
    else:
        workers[name].send_signal(signal.SIGKILL)  # that worker's whole process group

    def again() -> Any:
        with sessions() as session:
            return session.scalars(
                select(JobAttempt.started_at).where(JobAttempt.job_id == data["id"], JobAttempt.number == 2)
            ).first()

    try:
        started = h.wait_for(again, cap, 0.02, what="attempt 2")
        took = h.to_unix(started) - t_kill
    except TimeoutError:
        took = float("inf")
    jobs.cancel(user, data["id"])
    h.wait_for(lambda: jobs.get(user, data["id"])["status"] == "canceled", 30, 0.05, what="probe canceled")
    # On a threads pool the job runs in the worker's main process: a "child" kill ends the worker too.
    # Any worker that is not alive (the killed one; one that recycled itself) starts again.
    for worker_name, worker in list(workers.items()):
        if (worker_name == name and how == "worker") or not worker.alive():
            stack.stop(worker, timeout_s=5)
            stack.procs.remove(worker)
            workers[worker_name] = stack.questboard_worker(env, "default,low", 2, name=worker_name)
    return took


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = h.parser(__doc__.splitlines()[0], deadline_s=600)
    p.add_argument("--cap", type=float, default=150.0, help="seconds to wait for plain Celery's redelivery")
    p.add_argument("--qb-cap", type=float, default=60.0)
    args = p.parse_args(argv)

    def body(stack: h.Stack) -> dict[str, Any]:
        from shared.accounts import Accounts
        from shared.db import get_sessionmaker

        redis_srv = stack.start_redis()
        h.set_broker_epoch(redis_srv.url)
        db_url = stack.database_url(args.db, "p5")
        [(uid, _token)] = h.make_users(db_url, 1)
        user = Accounts(db_url).get_user(uid)
        env = stack.env(redis_srv.url, db_url)
        jobs = h.questboard_jobs(redis_srv.url, db_url)
        sessions = get_sessionmaker(db_url)

        # Plain Celery: every trial at once, each on its own queue with its own 2 workers, on Redis db 3.
        plain_url = redis_srv.url.rsplit("/", 1)[0] + "/3"
        pc = h.redis.Redis.from_url(plain_url, decode_responses=True)
        papp = h.plain_celery(plain_url)
        trials = [(r, how) for r in range(args.runs) for how in ("child", "worker")]
        plain_workers: dict[str, list[Any]] = {}
        for r, how in trials:
            q = f"p5_{how}_{r}"
            plain_workers[q] = [
                stack.plain_worker(plain_url, q, 2, acks_late=True, prefetch=1, name=f"{q}_{k}", wait=False)
                for k in range(2)
            ]
        for ws in plain_workers.values():
            for w in ws:
                h.wait_plain_ready(w, 120)
        kills: dict[str, float] = {}
        for r, how in trials:
            q = f"p5_{how}_{r}"
            papp.send_task("bench.sleep", args=[q, 60.0], queue=q, routing_key=q)
        for r, how in trials:
            q = f"p5_{how}_{r}"
            h.wait_for(lambda q=q: pc.llen(f"bench:start:{q}") >= 1, 60, 0.01, what=f"{q} started")
        # The task recorded its pool process's pid; its process group is the worker that runs it.
        for r, how in trials:
            q = f"p5_{how}_{r}"
            child = int(pc.lindex(f"bench:start:{q}", 0).split()[1])
            holder = next(w for w in plain_workers[q] if os.getpgid(child) == w.pid)
            kills[q] = time.time()
            if how == "child":
                os.kill(child, signal.SIGKILL)
            else:
                holder.send_signal(signal.SIGKILL)
        h.log("plain Celery tasks killed; Questboard trials while waiting for redelivery")

        workers = {name: stack.questboard_worker(env, "default,low", 2, name=name) for name in ("qa", "qb")}
        qb: dict[str, list[float]] = {"child": [], "worker": []}
        for r in range(args.runs):
            for how in ("child", "worker"):
                took = questboard_trial(stack, env, workers, jobs, user, sessions, how, args.qb_cap)
                qb[how].append(took)
                h.log(f"run {r + 1}: questboard {how} kill -> runs again after {took:.2f} s")

        deadline = min(kills.values()) + args.cap
        while time.time() < deadline:
            if all(pc.llen(f"bench:start:{q}") >= 2 for q in kills):
                break
            time.sleep(0.2)
        plain: dict[str, list[float]] = {"child": [], "worker": []}
        for r, how in trials:
            q = f"p5_{how}_{r}"
            starts = pc.lrange(f"bench:start:{q}", 0, -1)
            plain[how].append(float(starts[1].split()[0]) - kills[q] if len(starts) >= 2 else float("inf"))
        h.log(f"plain Celery: {plain}")

        def fmt(v: float) -> float | str:
            return v if v != float("inf") else f">= {args.cap:.0f}"

        summary = {
            "questboard_child_kill_s": h.median(qb["child"]),
            "questboard_worker_kill_s": h.median(qb["worker"]),
            "plain_child_kill_s": fmt(sorted(plain["child"])[len(plain["child"]) // 2]),
            "plain_worker_kill_s": fmt(sorted(plain["worker"])[len(plain["worker"]) // 2]),
            "cap_s": args.cap,
        }
        return {
            "summary": summary,
            "per_run": {"questboard": qb, "plain": {k: [fmt(x) for x in v] for k, v in plain.items()}},
        }

    return h.run_benchmark("p5_recovery", args, body)


if __name__ == "__main__":
    main(sys.argv[1:])
