# ruff: noqa: E501
"""Profile of P1: where a Questboard no-op job's time goes, and what the prototypes gain.

One Questboard drain of N probe jobs (2 pool processes, as P1), recorded with
  - py-spy (CPU samples of the worker and its pool processes) -> CPU by phase of run_job and by kind;
  - Redis INFO commandstats before/after -> commands per job;
  - SQLAlchemy engine events in the pool processes -> statements and commits per job;
then, with ``--prototypes``, the same drain again for each prototype in ``benchmarks.prototypes``
(monkeypatched into the worker through ``--include``; no project file is edited), each beside a
plain Celery (acks_late, prefetch 1) drain in the same run.

    python -m benchmarks.profile_p1 [--jobs 3000] [--prototypes all|name,name] [--runs 3]
"""

from __future__ import annotations

import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks import harness as h
from benchmarks.p1_throughput import drain_plain, drain_questboard

# Phases of one job, recognised by a frame on the stack (first match from the leaf up wins).
PHASES = [
    ("claim (UPDATE..RETURNING + attempt INSERT + event INSERT + commit)", "claim (shared/lifecycle.py"),
    (
        "progress (held; or UPDATE..RETURNING + event INSERTs + commit + publish)",
        "progress (shared/lifecycle.py",
    ),
    (
        "succeed (UPDATE..RETURNING + event INSERTs + attempt UPDATE + commit + publish)",
        "succeed (shared/lifecycle.py",
    ),
    ("other run_job (params, hooks, logging)", "run_job (workers/runtime.py"),
    ("celery task trace (outside run_job)", "trace_task"),
    ("pool child: waiting for the next task", "workloop"),
    ("main process: consumer/event loop", "asynloop"),
    ("main process: maintenance loop", "_loop (workers/maintenance.py"),
]
# Inside a job phase, what kind of work (the first of these found anywhere on the stack wins).
KINDS = [
    ("publish (socketio RedisManager emit + pipelined PUBLISH)", "job_update"),
    ("sqlite: commit", "commit (sqlite3"),
    ("db: COMMIT", "_commit_impl"),
    ("db: execute (cursor)", "do_execute"),
    ("db: SQLAlchemy ORM/Core (compile, flush, rows)", "sqlalchemy"),
    ("logging", "logging/"),
    ("json", "json/"),
    ("redis client", "redis/"),
]


def micro(stack: h.Stack, redis_url: str, db_kind: str, n: int = 1500) -> dict[str, Any]:
    """One process, no contention: the lifecycle calls of a no-op job (claim, progress 100 %, succeed),
    timed one by one, with the real publisher and with none."""
    import os

    from shared.dispatch import NoDispatch
    from shared.lifecycle import Lifecycle
    from shared.publisher import NullPublisher, SocketIOPublisher

    db = stack.database_url(db_kind, "micro")
    [(uid, _)] = h.make_users(db, 1)
    ids = h.insert_jobs(db, uid, 2 * n)
    out = {}
    for k, (name, pub) in enumerate([("socketio", SocketIOPublisher(redis_url)), ("none", NullPublisher())]):
        lc = Lifecycle(db, pub, NoDispatch())
        tc = tp = ts = 0.0
        for job_id in ids[k * n : (k + 1) * n]:
            a = time.perf_counter()
            job = lc.claim(job_id, "micro", os.getpid())
            b = time.perf_counter()
            lc.progress(job_id, 100, "Step 1 of 1")
            c = time.perf_counter()
            lc.succeed(job_id, job.attempts, {"steps": 1}, "Step 1 of 1")
            d = time.perf_counter()
            tc, tp, ts = tc + b - a, tp + c - b, ts + d - c
        out[f"publisher_{name}"] = {
            "claim_ms": 1000 * tc / n,
            "progress_ms": 1000 * tp / n,
            "succeed_ms": 1000 * ts / n,
            "total_ms": 1000 * (tc + tp + ts) / n,
        }
    return out


class PySpy:
    """py-spy record (CPU samples) over the worker and its pool processes, stopped with SIGINT."""

    def __init__(self, stack: h.Stack, out: Path, rate: int = 200) -> None:
        self.stack, self.out, self.rate = stack, out, rate
        self.proc: Any = None

    def start(self, worker: Any) -> None:
        from questboard.testing import ManagedProcess

        exe = str(Path(sys.executable).parent / "py-spy")
        argv = [
            exe,
            "record",
            "--pid",
            str(worker.pid),
            "--subprocesses",
            "--rate",
            str(self.rate),
            "--format",
            "raw",
            "--output",
            str(self.out),
            "--nonblocking",
        ]
        self.proc = ManagedProcess("py-spy", argv, dict(__import__("os").environ), self.stack.logs)
        self.stack.procs.append(self.proc)
        self.proc.start()
        time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.proc.wait(timeout=30)
            except Exception:
                self.proc.stop(timeout_s=1)


def analyse(raw: Path) -> dict[str, Any]:
    phases: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = {}
    leaves: Counter[str] = Counter()
    total_child = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        text = ";".join(frames)
        phase = next((name for name, needle in PHASES if needle in text), "other")
        if "workloop" in text or "trace_task" in text or "run_job" in text:
            total_child += count
        phases[phase] += count
        if "run_job" in text:
            # Leaf-first search for the kind of work.
            kind = next((name for name, needle in KINDS if needle in text), "other")
            kinds.setdefault(phase, Counter())[kind] += count
            leaves[re.sub(r":\d+\)", ")", frames[-1])] += count
    total = sum(phases.values()) or 1
    return {
        "samples": total,
        "pool_child_samples": total_child,
        "phases_pct_of_pool_time": {
            k: round(100 * v / (total_child or 1), 1)
            for k, v in phases.most_common()
            if not k.startswith(("main process", "other"))
        },
        "kinds_in_run_job_pct": {
            phase: {k: round(100 * v / (total_child or 1), 1) for k, v in c.most_common()}
            for phase, c in kinds.items()
        },
        "top_leaves_in_run_job_pct": {
            k: round(100 * v / (total_child or 1), 1) for k, v in leaves.most_common(25)
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = h.parser(__doc__.splitlines()[0], deadline_s=1500, runs=3)
    p.add_argument("--jobs", type=int, default=3000)
    p.add_argument(
        "--prototypes", default="", help="'all' or comma-separated names from benchmarks.prototypes"
    )
    p.add_argument("--no-pyspy", action="store_true")
    p.add_argument("--prototypes-only", action="store_true", help="skip the counts, micro and py-spy parts")
    args = p.parse_args(argv)
    from benchmarks.prototypes import PROTOTYPES

    chosen = list(PROTOTYPES) if args.prototypes == "all" else [x for x in args.prototypes.split(",") if x]
    n = args.jobs

    def body(stack: h.Stack) -> dict[str, Any]:
        redis_url = stack.start_redis().url
        timeout = max(120.0, n / 10)
        out: dict[str, Any] = {}
        if not args.prototypes_only:
            # 1. Counts (SQL statements/commits per job, Redis commands per job) without the profiler.
            h.log("counting SQL and Redis per job")
            counted = drain_questboard(
                stack, redis_url, args.db, n, "count", timeout, extra_env={"BENCH_COUNT_SQL": "1"}
            )
            plain = drain_plain(stack, redis_url, n, "count-plain", True, 1, timeout)
            out["counts"] = {
                "questboard_redis_commands_per_job": counted["redis_commands_per_job"],
                "questboard_redis_calls_per_job": counted["redis_calls_per_job"],
                "plain_redis_calls_per_job": plain["redis_calls_per_job"],
                "questboard_sql_per_job": counted["sql_per_job"],
            }
            h.log("one pool process against two")
            out["concurrency"] = {
                f"c{c}_jobs_per_s": drain_questboard(
                    stack, redis_url, args.db, n, f"conc{c}", timeout, concurrency=c
                )["jobs_per_s"]
                for c in (1, 2)
            }
            h.log("micro: lifecycle calls in one process")
            out["micro_one_process"] = micro(stack, redis_url, args.db)
            # 2. py-spy.
            if not args.no_pyspy:
                h.log("py-spy")
                raw = stack.dir / "pyspy.txt"
                spy = PySpy(stack, raw)
                drain_questboard(stack, redis_url, args.db, n, "spy", timeout, profile=spy)
                out["pyspy"] = analyse(raw)
                keep = h.RESULTS_DIR / "profile_p1_pyspy_raw.txt"
                keep.parent.mkdir(parents=True, exist_ok=True)
                keep.write_text(raw.read_text(errors="replace"))
        # 3. Prototypes, each beside the unchanged Questboard and plain Celery in the same run.
        if chosen:
            rows: dict[str, list[dict[str, float]]] = {name: [] for name in ["baseline", *chosen]}
            for r in range(args.runs):
                plain_r = drain_plain(stack, redis_url, n, f"pp{r}", True, 1, timeout)["jobs_per_s"]
                variants = ["baseline", *chosen]
                k = r % len(variants)
                for name in variants[k:] + variants[:k]:  # a different order each run
                    spec = PROTOTYPES.get(name, {})
                    res = drain_questboard(
                        stack,
                        redis_url,
                        args.db,
                        n,
                        f"{name}{r}".replace("-", "_"),
                        timeout,
                        extra_env={"BENCH_PROTO": name, **spec.get("env", {})},
                        extra_args=tuple(spec.get("args", ())),
                        include=("benchmarks.worker_probe", "benchmarks.prototypes"),
                        concurrency=spec.get("concurrency", 2),
                    )
                    cpu = res["cpu_ms_per_job"]
                    rows[name].append(
                        {
                            "jobs_per_s": res["jobs_per_s"],
                            "vs_plain": res["jobs_per_s"] / plain_r,
                            "redis_calls_per_job": res["redis_calls_per_job"],
                            "cpu_ms_per_job": cpu["worker_main"] + cpu["pool_children"] + cpu["redis_server"],
                            "cpu_main_ms": cpu["worker_main"],
                            "cpu_children_ms": cpu["pool_children"],
                        }
                    )
                    h.log(
                        f"  run {r}: {name}: {res['jobs_per_s']:.0f} jobs/s ({res['jobs_per_s'] / plain_r:.2f} of plain)"
                    )
            base = h.median(x["jobs_per_s"] for x in rows["baseline"])
            for xs in rows.values():  # gain within each run (the machine is shared: runs drift)
                for x, b in zip(xs, rows["baseline"], strict=True):
                    x["gain"] = x["jobs_per_s"] / b["jobs_per_s"]
            out["prototypes"] = {
                name: {
                    "what": PROTOTYPES.get(name, {}).get("what", "Questboard as it is"),
                    "jobs_per_s": h.median(x["jobs_per_s"] for x in xs),
                    "ratio_vs_plain_same_run": h.median(x["vs_plain"] for x in xs),
                    "gain_vs_unchanged": h.median(x["gain"] for x in xs),
                    "gain_of_medians": h.median(x["jobs_per_s"] for x in xs) / base,
                    "redis_calls_per_job": h.median(x["redis_calls_per_job"] for x in xs),
                    "cpu_ms_per_job": h.median(x["cpu_ms_per_job"] for x in xs),
                    "cpu_main_ms_per_job": h.median(x["cpu_main_ms"] for x in xs),
                    "cpu_children_ms_per_job": h.median(x["cpu_children_ms"] for x in xs),
                    "cpu_saved_vs_unchanged": 1
                    - h.median(x["cpu_ms_per_job"] for x in xs)
                    / h.median(x["cpu_ms_per_job"] for x in rows["baseline"]),
                }
                for name, xs in rows.items()
            }
        return {"summary": out}

    return h.run_benchmark("profile_p1", args, body)


if __name__ == "__main__":
    main(sys.argv[1:])
