# ruff: noqa: E501
"""P7 — submit -> running: HTTP POST /api/jobs until the job's `started_at`, p50 on idle workers.

Questboard: web as `questboard web` runs it, workers as `questboard up` runs them (pools critical,high and
default,low, 2 processes each); one `diagnostics.probe` at a time, the next one only after the previous
finished (the workers are idle at each submit). Latency = started_at (written by the worker) - the
client's clock just before the POST.
Baseline in the same run, same Redis, same gunicorn command and a 2-process pool with the same settings
(acks_late, prefetch 1): a bare Flask app whose POST does a plain Celery send_task of `bench.mark`, which
records when it starts.

    python -m benchmarks.p7_submit_to_running [--runs 3] [--jobs 40]
"""

from __future__ import annotations

import sys
import time
from typing import Any

import requests

from benchmarks import harness as h

SPLIT: dict[str, list[float]] = {"questboard_post_ms": [], "plain_post_ms": []}


def questboard_once(sess: requests.Session, base: str, token: str, sessions: Any) -> float:
    from shared.models import Job

    t0 = time.time()
    resp = sess.post(
        f"{base}/api/jobs",
        json={"type": "diagnostics.probe", "params": {"steps": 1}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    resp.raise_for_status()
    SPLIT["questboard_post_ms"].append(1000 * (time.time() - t0))
    job_id = resp.json()["id"]

    def done() -> Any:
        with sessions() as session:
            job = session.get(Job, job_id)
            return job if job is not None and job.status == "succeeded" else None

    job = h.wait_for(done, 10, 0.005, what="probe finished")
    return h.to_unix(job.started_at) - t0


def plain_once(sess: requests.Session, base: str, client: Any, i: int) -> float:
    key = f"p7-{i}-{time.time()}"
    t0 = time.time()
    resp = sess.post(f"{base}/submit", json={"key": key}, timeout=10)
    resp.raise_for_status()
    SPLIT["plain_post_ms"].append(1000 * (time.time() - t0))
    started = h.wait_for(lambda: client.lindex(f"bench:start:{key}", 0), 10, 0.005, what="plain task started")
    return float(started) - t0


def post_wakeup(
    sess: requests.Session, base: str, bare_base: str, token: str, n: int = 40
) -> dict[str, float]:
    calls = {
        "questboard_post": lambda: sess.post(
            f"{base}/api/jobs",
            json={"type": "diagnostics.probe", "params": {"steps": 1}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ),
        "bare_post": lambda: sess.post(f"{bare_base}/submit", json={}, timeout=10),
        "healthz_get": lambda: sess.get(f"{base}/healthz", timeout=10),
    }
    out: dict[str, float] = {}
    for gap in (0.0, 0.1):
        for name, call in calls.items():
            took = []
            for _ in range(n):
                t0 = time.perf_counter()
                call().raise_for_status()
                took.append(1000 * (time.perf_counter() - t0))
                time.sleep(gap)
            out[f"{name}_p50_ms_gap_{gap:g}s"] = h.percentile(took, 50)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = h.parser(__doc__.splitlines()[0], deadline_s=600)
    p.add_argument("--jobs", type=int, default=40, help="submissions per system per run")
    p.add_argument("--gap", type=float, default=0.1, help="seconds between submissions")
    args = p.parse_args(argv)

    def body(stack: h.Stack) -> dict[str, Any]:
        from shared.db import get_sessionmaker

        redis_srv = stack.start_redis()
        client = redis_srv.client()
        h.set_broker_epoch(redis_srv.url)
        db_url = stack.database_url(args.db, "p7")
        [(_uid, token)] = h.make_users(db_url, 1)
        env = stack.env(redis_srv.url, db_url)
        _web, base = stack.web(env)
        _bare, bare_base = stack.web({**env, "BENCH_QUEUE": "bench"}, app="benchmarks.bare_web:app")
        stack.questboard_worker(env, "critical,high", 2, name="critical-high")
        stack.questboard_worker(env, "default,low", 2, name="default-low")
        stack.plain_worker(redis_srv.url, "bench", 2, acks_late=True, prefetch=1, name="plain")
        sessions = get_sessionmaker(db_url)
        sess = requests.Session()
        for _ in range(3):  # warm-up: first connections, first statements
            questboard_once(sess, base, token, sessions)
            plain_once(sess, bare_base, client, -1)
        runs = []
        for r in range(args.runs):
            qb, plain = [], []
            for v in SPLIT.values():
                v.clear()
            for i in range(args.jobs):
                qb.append(questboard_once(sess, base, token, sessions))
                time.sleep(args.gap)
                plain.append(plain_once(sess, bare_base, client, i))
                time.sleep(args.gap)
            run = {
                "questboard_p50_ms": 1000 * h.percentile(qb, 50),
                "questboard_p99_ms": 1000 * h.percentile(qb, 99),
                "plain_p50_ms": 1000 * h.percentile(plain, 50),
                "plain_p99_ms": 1000 * h.percentile(plain, 99),
            }
            run["ratio_p50"] = run["questboard_p50_ms"] / run["plain_p50_ms"]
            # Of which: the HTTP POST round trip (the rest is broker -> worker -> claim).
            run["questboard_post_p50_ms"] = h.percentile(SPLIT["questboard_post_ms"], 50)
            run["plain_post_p50_ms"] = h.percentile(SPLIT["plain_post_ms"], 50)
            h.log(
                f"run {r + 1}: questboard p50 {run['questboard_p50_ms']:.1f} ms, plain p50 {run['plain_p50_ms']:.1f} ms"
            )
            runs.append(run)
        summary = {k: h.median(r[k] for r in runs) for k in runs[0]}
        summary["jobs_per_run"] = args.jobs
        # How much of the POST is the idle system waking up: the same POSTs back to back vs 0.1 s apart.
        summary["post_wakeup"] = post_wakeup(sess, base, bare_base, token)
        return {"summary": summary, "per_run": runs}

    return h.run_benchmark("p7_submit_to_running", args, body)


if __name__ == "__main__":
    main(sys.argv[1:])
