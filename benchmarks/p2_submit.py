# ruff: noqa: E501
"""P2 — submit: `POST /api/jobs` latency p50/p99 and throughput under a concurrent loopback load.

The web process is started exactly as `questboard web` runs it (gunicorn gthread, 1 worker, 100 threads,
access log on) with QUESTBOARD_USER_JOB_LIMIT=1e9 and 16 users (requests rotate over their tokens), on a
fresh database per run; no worker runs (jobs wait in Redis). Loads: 1 connection (latency) and 16
connections (throughput), `--seconds` each, after a 2 s warm-up, with `wrk` (Debian package) or, if it is
not installed, a bounded Python client with threads. Baselines in the same run, same gunicorn command:
  bare  a minimal Flask app whose POST does one plain Celery send_task (benchmarks.bare_web)
  floor GET /healthz on the Questboard web process

    python -m benchmarks.p2_submit [--runs 3] [--seconds 8] [--db sqlite|postgres]
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks import harness as h

BODY = json.dumps({"type": "diagnostics.probe", "params": {"steps": 1}})
LOADS = {"c1": 1, "c16": 16}

LUA = """
local tokens = {%(tokens)s}
local n = 0
request = function()
  n = n + 1
  local headers = {["Content-Type"] = "application/json"}
  if #tokens > 0 then headers["Authorization"] = "Bearer " .. tokens[(n %% #tokens) + 1] end
  return wrk.format("%(method)s", "%(path)s", headers, %(body)s)
end
done = function(summary, latency, requests)
  io.write(string.format('RESULT {"p50_us":%%d,"p99_us":%%d,"max_us":%%d,"requests":%%d,"duration_us":%%d,' ..
    '"status_errors":%%d,"socket_errors":%%d}\\n', latency:percentile(50), latency:percentile(99), latency.max,
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def wrk(
    base: str,
    method: str,
    path: str,
    body: str | None,
    tokens: list[str],
    conns: int,
    seconds: float,
    workdir: Path,
) -> dict[str, Any]:
    script = workdir / f"wrk-{method}-{conns}.lua"
    script.write_text(
        LUA
        % {
            "tokens": ",".join(json.dumps(t) for t in tokens),
            "method": method,
            "path": path,
            "body": json.dumps(body) if body is not None else "nil",
        }
    )
    threads = min(2, conns)
    proc = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(conns),
            "-d",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    r = json.loads(line.removeprefix("RESULT "))
    return {
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
        "req_per_s": r["requests"] / (r["duration_us"] / 1e6),
        "requests": r["requests"],
        "errors": r["status_errors"] + r["socket_errors"],
    }


def python_load(
    base: str,
    method: str,
    path: str,
    body: str | None,
    tokens: list[str],
    conns: int,
    seconds: float,
    _workdir: Path,
) -> dict[str, Any]:
    """Fallback without wrk: ``conns`` threads, one keep-alive connection each, for ``seconds``."""
    parts = urlsplit(base)
    stop_at = time.monotonic() + seconds
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        mine: list[float] = []
        i = k
        while time.monotonic() < stop_at:
            headers = {"Content-Type": "application/json"}
            if tokens:
                headers["Authorization"] = f"Bearer {tokens[i % len(tokens)]}"
            i += 1
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status < 400
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            mine.append(time.perf_counter() - t0)
            if not ok:
                with lock:
                    errors[0] += 1
        with lock:
            lat.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    took = time.monotonic() - started
    return {
        "p50_ms": 1000 * h.percentile(lat, 50),
        "p99_ms": 1000 * h.percentile(lat, 99),
        "max_ms": 1000 * max(lat, default=float("nan")),
        "req_per_s": len(lat) / took,
        "requests": len(lat),
        "errors": errors[0],
    }


# Where a submit's CPU goes in the web process: the first of these found on a sampled stack wins.
WEB_PARTS = [
    ("publish job:update (socketio RedisManager)", "job_update (shared/publisher.py"),
    ("send_task to Redis (incl. task-sent event)", "send_task"),
    ("logging (app + access log)", "logging/"),
    ("submit: commit", "commit ("),
    ("submit: active-job COUNT", "_count_active"),
    ("auth: token lookup", "user_for_token"),
    ("submit: other (guard UPDATE, INSERT job+event, validation)", "submit (shared/jobs.py"),
    ("request parsing / pydantic / Flask", "flask/"),
    ("gunicorn / socket I/O", "gunicorn/"),
]


def analyse_web(raw: Path) -> dict[str, float]:
    from collections import Counter

    counts: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        part = next(
            (name for name, needle in WEB_PARTS if needle in stack), "other (threads, engineio, idle loops)"
        )
        counts[part] += int(n)
    total = sum(counts.values()) or 1
    return {k: round(100 * v / total, 1) for k, v in counts.most_common()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = h.parser(__doc__.splitlines()[0], deadline_s=600)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--users", type=int, default=16)
    p.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument("--proto", default="", help="also measure benchmarks.proto_web with BENCH_WEB_PROTO=PROTO")
    p.add_argument(
        "--pyspy", action="store_true", help="profile the Questboard web process under 16 connections"
    )
    args = p.parse_args(argv)
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
    load = wrk if use_wrk else python_load

    def body(stack: h.Stack) -> dict[str, Any]:
        redis_srv = stack.start_redis()
        client = redis_srv.client()
        runs = []
        for r in range(args.runs):
            client.flushall()
            db_url = stack.database_url(args.db, f"p2r{r}")
            tokens = [t for _uid, t in h.make_users(db_url, args.users)]
            env = stack.env(redis_srv.url, db_url)
            qb, qb_base = stack.web(env)
            bare, bare_base = stack.web({**env, "BENCH_QUEUE": "bench"}, app="benchmarks.bare_web:app")
            proto = proto_base = None
            if args.proto:
                proto, proto_base = stack.web(
                    {**env, "BENCH_WEB_PROTO": args.proto}, app="benchmarks.proto_web:app"
                )
            run: dict[str, Any] = {}
            for name, conns in LOADS.items():
                targets = {
                    "questboard": (qb_base, "POST", "/api/jobs", BODY, tokens),
                    "bare": (bare_base, "POST", "/submit", "{}", []),
                    "healthz": (qb_base, "GET", "/healthz", None, []),
                }
                if proto_base:
                    targets["proto"] = (proto_base, "POST", "/api/jobs", BODY, tokens)
                for target, (base, method, path, payload, toks) in targets.items():
                    load(base, method, path, payload, toks, conns, 2.0, stack.dir)  # warm-up
                    spy = None
                    if args.pyspy and r == 0 and target == "questboard" and conns > 1:
                        from benchmarks.profile_p1 import PySpy

                        spy = PySpy(stack, stack.dir / "p2-pyspy.txt")
                        spy.start(qb)
                    res = load(base, method, path, payload, toks, conns, args.seconds, stack.dir)
                    if spy is not None:
                        spy.stop()
                        profile = analyse_web(stack.dir / "p2-pyspy.txt")
                        shutil.copy(stack.dir / "p2-pyspy.txt", h.RESULTS_DIR / "p2_pyspy_raw.txt")
                    run[f"{target}_{name}"] = res
                    h.log(
                        f"run {r + 1}: {target} {name}: p50 {res['p50_ms']:.2f} ms p99 {res['p99_ms']:.2f} ms "
                        f"{res['req_per_s']:.0f} req/s errors {res['errors']}"
                    )
            stack.stop(qb)
            stack.stop(bare)
            if proto is not None:
                stack.stop(proto)
            runs.append(run)

        def med(key: str, field: str) -> float:
            return h.median(r[key][field] for r in runs)

        summary = {
            "client": "wrk" if use_wrk else "python threads",
            "users": args.users,
            "questboard_p50_ms_c1": med("questboard_c1", "p50_ms"),
            "questboard_p99_ms_c1": med("questboard_c1", "p99_ms"),
            "questboard_p50_ms_c16": med("questboard_c16", "p50_ms"),
            "questboard_p99_ms_c16": med("questboard_c16", "p99_ms"),
            "questboard_req_per_s_c16": med("questboard_c16", "req_per_s"),
            "bare_p50_ms_c1": med("bare_c1", "p50_ms"),
            "bare_p99_ms_c1": med("bare_c1", "p99_ms"),
            "bare_p50_ms_c16": med("bare_c16", "p50_ms"),
            "bare_req_per_s_c16": med("bare_c16", "req_per_s"),
            "healthz_p50_ms_c1": med("healthz_c1", "p50_ms"),
            "healthz_req_per_s_c16": med("healthz_c16", "req_per_s"),
            "ratio_p50_c1_vs_bare": h.median(
                r["questboard_c1"]["p50_ms"] / r["bare_c1"]["p50_ms"] for r in runs
            ),
            "ratio_req_per_s_c16_vs_bare": h.median(
                r["questboard_c16"]["req_per_s"] / r["bare_c16"]["req_per_s"] for r in runs
            ),
            "errors": sum(r[k]["errors"] for r in runs for k in r),
        }
        if args.proto:
            summary.update(
                {
                    "proto": args.proto,
                    "proto_p50_ms_c1": med("proto_c1", "p50_ms"),
                    "proto_p99_ms_c1": med("proto_c1", "p99_ms"),
                    "proto_p50_ms_c16": med("proto_c16", "p50_ms"),
                    "proto_p99_ms_c16": med("proto_c16", "p99_ms"),
                    "proto_req_per_s_c16": med("proto_c16", "req_per_s"),
                }
            )
        out: dict[str, Any] = {"summary": summary, "per_run": runs}
        if args.pyspy:
            out["pyspy_web_c16"] = profile
        return out

    return h.run_benchmark("p2_submit", args, body)


if __name__ == "__main__":
    main(sys.argv[1:])
