"""One Questboard drain with the shipped pool (2 workers x threads -c 8) and where its CPU went.

Fills ``--jobs`` no-op jobs as P1 does (``harness.prepare_drain``), starts the two workers, waits for the
queues to drain and prints one JSON line: jobs/s (first task start to last task end), the PostgreSQL
server's CPU per job (every ``postgres`` process on the machine, so run it on a quiet one), and each
worker's CPU seconds. ``--pyspy`` also records each worker with py-spy (``--threads --idle``) for 8 s,
3 s after the start, into ``--out-dir``. Used to compare commits side by side: run it alternately from
each commit's tree, e.g. ``cd <worktree> && PYTHONPATH=. python <this file> --db postgres``.

    python -m benchmarks.drain_cpu [--db postgres|sqlite] [--jobs 6000] [--pyspy] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import harness as h
from benchmarks.p1_throughput import QB_QUEUES


def postgres_cpu_s() -> float:
    """CPU seconds (user + system) of every live process whose command line starts with ``postgres``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if not Path(f"/proc/{entry}/cmdline").read_text().startswith("postgres"):
                continue
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    p.add_argument("--jobs", type=int, default=6000)
    p.add_argument("--pyspy", action="store_true")
    p.add_argument("--out-dir", type=Path, default=Path("/tmp"))
    args = p.parse_args(argv)
    with h.Stack("drain-cpu") as stack:
        redis_url = stack.start_redis().url
        drain = h.prepare_drain(stack, redis_url, args.db, args.jobs, "drain")
        cpu_before = postgres_cpu_s()
        workers = [
            stack.questboard_worker(
                drain.env, ",".join(QB_QUEUES), 8, name=f"drain-{w}", timing=drain.timing, pool="threads"
            )
            for w in range(2)
        ]
        spies = []
        if args.pyspy:
            time.sleep(3)  # past the workers' start: the drain itself
            for w in workers:
                out = args.out_dir / f"{w.name}.pyspy.txt"
                cmd = [
                    "py-spy",
                    "record",
                    "-p",
                    str(w.pid),
                    "-d",
                    "8",
                    "-r",
                    "100",
                    "-f",
                    "raw",
                    "-o",
                    str(out),
                ]
                spies.append(subprocess.Popen([*cmd, "--nonblocking", "--threads", "--idle"]))
        h.wait_drained(h.redis.Redis.from_url(redis_url), QB_QUEUES, 600, workers[0])
        cpu_after = postgres_cpu_s()
        worker_cpu = [h.group_cpu(w.pid) for w in workers]
        for spy in spies:
            spy.wait()
        for w in workers:
            stack.stop(w)
        t = h.read_timing(drain.timing)
        secs = t["last"] - t["first"]
        print(
            json.dumps(
                {
                    "db": args.db,
                    "jobs": args.jobs,
                    "jobs_per_s": round(args.jobs / secs, 1),
                    "seconds": round(secs, 2),
                    "postgres_cpu_ms_per_job": round((cpu_after - cpu_before) * 1000 / args.jobs, 3),
                    "worker_cpu_s": worker_cpu,
                }
            )
        )


if __name__ == "__main__":
    main(sys.argv[1:])
