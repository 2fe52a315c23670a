# ruff: noqa: E501
"""Run every benchmark (each as its own command, in its own process group, with a time limit), then write
the results table into BENCHMARKS.md between the `<!-- results:start -->` / `<!-- results:end -->` markers.

    python -m benchmarks.run_all                 # everything, default sizes (~25 min)
    python -m benchmarks.run_all --quick         # small sizes, 1 run each (~5 min): a smoke test (results/quick/, printed)
    python -m benchmarks.run_all --only p2,p3    # some of them
    python -m benchmarks.run_all --render-only   # rewrite the table from benchmarks/results/*.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "results"
DOC = REPO_ROOT / "BENCHMARKS.md"

SHIPPED_POOL = ["--pool", "threads", "--workers", "2", "--concurrency", "8"]
# name -> (module, default args, quick args, time limit in seconds)
BENCHMARKS: dict[str, tuple[str, list[str], list[str], int]] = {
    "p1": ("benchmarks.p1_throughput", [], ["--jobs", "2000", "--runs", "1"], 1500),
    "p2": ("benchmarks.p2_submit", [], ["--runs", "1", "--seconds", "4"], 600),
    "p3": ("benchmarks.p3_relay", [], ["--runs", "1", "--seconds", "5"], 600),
    "p4": ("benchmarks.p4_priority", [], ["--runs", "1"], 600),
    "p5": ("benchmarks.p5_recovery", [], ["--runs", "1", "--cap", "30"], 600),
    "p6": ("benchmarks.p6_scale", [], ["--runs", "1", "--big", "20000"], 900),
    "p7": ("benchmarks.p7_submit_to_running", [], ["--runs", "1", "--jobs", "10"], 600),
    "p8": ("benchmarks.p8_browser", [], ["--rows", "50000", "--repeat", "5"], 1800),
    "p10": ("benchmarks.p10_fair_share", [], ["--backlog", "2000", "--window", "3", "--probes", "2"], 900),
    "p9": ("benchmarks.p9_connections", [], ["--runs", "1", "--idle", "500", "--slow", "50"], 900),
    # P1b/P1c and the Redis count run the pool `questboard up` ships (2 thread workers x 8 on a 2-core
    # machine); run the modules by hand with --pool/--workers/--concurrency for others.
    "p1bc": (
        "benchmarks.p1bc_baselines",
        SHIPPED_POOL,
        [*SHIPPED_POOL, "--jobs", "500", "--runs", "1"],
        1200,
    ),
    "redis": (
        "benchmarks.redis_commands",
        SHIPPED_POOL,
        [*SHIPPED_POOL, "--jobs", "300", "--runs", "1", "--idle", "3"],
        900,
    ),
}


def run_one(name: str, quick: bool, extra: list[str]) -> int:
    module, default, quick_args, limit = BENCHMARKS[name]
    argv = [sys.executable, "-m", module, *(quick_args if quick else default), *extra]
    if quick:  # never overwrite the full results with a smoke test's
        argv += ["--out", str(RESULTS / "quick" / f"{module.rsplit('.', 1)[1]}.json")]
    print(f"== {name}: {' '.join(argv[1:])}", flush=True)
    started = time.time()
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, start_new_session=True)
    try:
        code = proc.wait(timeout=limit + 60)
    except subprocess.TimeoutExpired:
        # Past its own deadline: SIGTERM lets it clean up its children; then its whole group goes.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        raise
    print(f"== {name}: exit {code} after {time.time() - started:.0f} s", flush=True)
    return code


_SOURCE = {"dir": RESULTS}


def _load(name: str) -> dict[str, Any] | None:
    path = _SOURCE["dir"] / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _f(v: Any, digits: int = 1) -> str:
    if isinstance(v, str):
        return v
    if v is None or v != v:
        return "–"
    return f"{v:,.{digits}f}"


def render() -> str:
    rows: list[str] = []
    meta: dict[str, Any] = {}

    def row(
        bench: str, metric: str, qb: str, base: str, baseline: str, r: str, target: str, ok: bool | None
    ) -> None:
        mark = "" if ok is None else (" ✅" if ok else " ❌")
        rows.append(f"| {bench} | {metric} | {qb} | {base} | {baseline} | {r} | {target}{mark} |")

    if d := _load("p1_throughput"):
        s, meta["p1"] = d["summary"], d
        row(
            "P1",
            f"drain {s['jobs']:,} no-op jobs, jobs/s",
            _f(s["questboard_jobs_per_s"], 0),
            _f(s["plain_tuned_jobs_per_s"], 0),
            "plain Celery, same pool (-c 2, acks_late, prefetch 1)",
            _f(s["ratio_vs_plain_same_pool"], 2),
            "≥ 0.90",
            s["ratio_vs_plain_same_pool"] >= 0.9,
        )
        row(
            "P1",
            "same, pool settings `questboard up` ships",
            _f(s["questboard_jobs_per_s"], 0),
            _f(s["plain_default_jobs_per_s"], 0),
            "plain Celery prefork defaults (-c 2, prefetch 4)",
            _f(s["ratio_shipped_vs_plain_defaults"], 2),
            "≥ 1.5",
            s["ratio_shipped_vs_plain_defaults"] >= 1.5,
        )
    if d := _load("p1bc_baselines"):
        s, meta["p1bc"] = d["summary"], d
        pool = s["questboard_pool"]
        row(
            "P1b",
            f"drain {s['jobs']:,} no-op jobs, Questboard {pool} (SQLite), jobs/s",
            _f(s["questboard_sqlite_jobs_per_s"], 0),
            _f(s["plain_default_jobs_per_s"], 0),
            "plain Celery prefork defaults (-c 2, prefetch 4)",
            _f(s["p1b_sqlite_vs_plain_default"], 2),
            "≥ 1.5",
            s["p1b_sqlite_vs_plain_default"] >= 1.5,
        )
        for procs in ("2x1", "2x8"):
            row(
                "P1c",
                f"same on PostgreSQL, jobs/s (vs procrastinate {procs.replace('x', ' × ')})",
                _f(s["questboard_pg_jobs_per_s"], 0),
                _f(s[f"procrastinate_{procs}_jobs_per_s"], 0),
                f"procrastinate, {procs.replace('x', ' workers × ')} concurrency, same PostgreSQL",
                _f(s[f"p1c_pg_vs_procrastinate_{procs}"], 2),
                "≥ 1.5",
                s[f"p1c_pg_vs_procrastinate_{procs}"] >= 1.5,
            )
        row(
            "P1c",
            "PostgreSQL vs SQLite, same pool, jobs/s",
            _f(s["questboard_pg_jobs_per_s"], 0),
            _f(s["questboard_sqlite_jobs_per_s"], 0),
            "Questboard on SQLite, same run",
            _f(s["p1c_pg_vs_sqlite"], 2),
            "≥ 1.0",
            s["p1c_pg_vs_sqlite"] >= 1.0,
        )
    if d := _load("redis_commands"):
        s, meta["redis"] = d["summary"], d
        row(
            "Redis",
            f"commands per no-op job ({s['pool']})",
            _f(s["questboard_commands_per_job"], 2),
            _f(s["plain_commands_per_job"], 2),
            "plain Celery, same pool, INFO commandstats",
            "+" + _f(s["questboard_minus_plain"], 2),
            "≤ +2",
            s["questboard_minus_plain"] <= 2,
        )
    if d := _load("p2_submit"):
        s, meta["p2"] = d["summary"], d
        row(
            "P2",
            "POST /api/jobs p50 / p99, 1 connection, ms",
            f"{_f(s['questboard_p50_ms_c1'], 2)} / {_f(s['questboard_p99_ms_c1'], 1)}",
            f"{_f(s['bare_p50_ms_c1'], 2)} / {_f(s['bare_p99_ms_c1'], 1)}",
            "bare Flask POST → Celery send_task",
            _f(s["ratio_p50_c1_vs_bare"], 2),
            "p50 ≤ 5 ms",
            s["questboard_p50_ms_c1"] <= 5,
        )
        row(
            "P2",
            "POST /api/jobs req/s (p50 / p99 ms), 16 connections",
            f"{_f(s['questboard_req_per_s_c16'], 0)} ({_f(s['questboard_p50_ms_c16'], 1)} / {_f(s['questboard_p99_ms_c16'], 0)})",
            f"{_f(s['bare_req_per_s_c16'], 0)} ({_f(s['bare_p50_ms_c16'], 1)} / –)",
            "bare Flask POST → Celery send_task",
            _f(s["ratio_req_per_s_c16_vs_bare"], 2),
            "≥ 500 req/s",
            s["questboard_req_per_s_c16"] >= 500,
        )
    if d := _load("p3_relay"):
        s, meta["p3"] = d["summary"], d
        row(
            "P3",
            f"relay p50 / p99 at {s['rate_events_per_s']:,.0f} ev/s, {s['clients']} clients, ms",
            f"{_f(s['questboard_p50_ms'], 2)} / {_f(s['questboard_p99_ms'], 2)}",
            f"{_f(s['bare_p50_ms'], 2)} / {_f(s['bare_p99_ms'], 2)}",
            "bare Flask-SocketIO relay",
            _f(s["ratio_p99_vs_bare"], 2) + " (p99)",
            "p99 ≤ 10 ms, ≤ 3× bare",
            s["questboard_p99_ms"] <= 10 and s["ratio_p99_vs_bare"] <= 3,
        )
        row(
            "P3",
            "push (Questboard) vs polling, p50 / p99, ms",
            f"{_f(s['questboard_p50_ms'], 2)} / {_f(s['questboard_p99_ms'], 2)}",
            f"{_f(s['polling_p50_ms'], 0)} / {_f(s['polling_p99_ms'], 0)}",
            "GET /api/jobs/<id> every 100 ms",
            _f(s["questboard_p99_ms"] / s["polling_p99_ms"], 3) + " (p99)",
            "–",
            None,
        )
    if d := _load("p4_priority"):
        s, meta["p4"] = d["summary"], d
        row(
            "P4",
            f"critical start delay behind {s['low_waiting_at_submit']:,.0f} low, p50 ms",
            _f(s["behind_backlog_p50_ms"], 1),
            _f(s["idle_p50_ms"], 1),
            "same submit, no backlog",
            _f(s["ratio_vs_idle"], 2),
            "≤ 1000 ms",
            s["behind_backlog_p50_ms"] <= 1000,
        )
        row(
            "P4",
            "same, beside plain Celery (one pool on critical,low)",
            _f(s["behind_backlog_p50_ms"], 1),
            _f(s["plain_behind_backlog_p50_ms"], 1),
            "plain Celery behind the same backlog",
            _f(s["ratio_vs_plain"], 2),
            "–",
            None,
        )
    if d := _load("p5_recovery"):
        s, meta["p5"] = d["summary"], d
        row(
            "P5",
            "pool process SIGKILLed mid-job → runs again, s",
            _f(s["questboard_child_kill_s"], 2),
            _f(s["plain_child_kill_s"], 0),
            "plain Celery acks_late, same kill",
            "–",
            "≤ 15 s",
            s["questboard_child_kill_s"] <= 15,
        )
        row(
            "P5",
            "whole worker SIGKILLed mid-job → runs again, s",
            _f(s["questboard_worker_kill_s"], 2),
            _f(s["plain_worker_kill_s"], 0),
            "plain Celery acks_late, same kill",
            "–",
            "≤ 15 s",
            s["questboard_worker_kill_s"] <= 15,
        )
    if d := _load("p6_scale"):
        s, meta["p6"] = d["summary"], d
        row(
            "P6",
            f"jobs/s with {s['big_backlog']:,} waiting",
            _f(s["big_jobs_per_s"], 0),
            _f(s["small_jobs_per_s"], 0),
            f"same with {s['small_backlog']:,} waiting",
            _f(s["ratio_big_vs_small"], 2),
            "≥ 0.90",
            s["ratio_big_vs_small"] >= 0.9,
        )
    if d := _load("p7_submit_to_running"):
        s, meta["p7"] = d["summary"], d
        row(
            "P7",
            "HTTP POST → started_at, idle workers, p50 / p99 ms",
            f"{_f(s['questboard_p50_ms'], 1)} / {_f(s['questboard_p99_ms'], 1)}",
            f"{_f(s['plain_p50_ms'], 1)} / {_f(s['plain_p99_ms'], 1)}",
            "bare Flask POST → plain Celery task start",
            _f(s["ratio_p50"], 2),
            "p50 ≤ 10 ms",
            s["questboard_p50_ms"] <= 10,
        )
    if d := _load("p10_fair_share"):
        s, meta["p10"] = d["summary"], d
        row(
            "P10",
            f"one user's job start delay behind another's {s['backlog']:,}-job backlog, p50 ms",
            _f(s["on_delay_p50_ms"], 0),
            _f(s["off_delay_ms"], 0),
            "same, fair share off (QUESTBOARD_FAIR_SHARE=0: FIFO)",
            _f(s["delay_ratio_on_vs_off"], 3),
            "≤ 1500 ms",
            s["on_delay_p50_ms"] <= 1500,
        )
        row(
            "P10",
            "single-user drain, jobs/s (worker CPU ms per job)",
            f"{_f(s['on_drain_jobs_per_s'], 0)} ({_f(s['on_worker_cpu_ms_per_job'], 2)})",
            f"{_f(s['off_drain_jobs_per_s'], 0)} ({_f(s['off_worker_cpu_ms_per_job'], 2)})",
            "same, fair share off",
            _f(s["drain_ratio_on_vs_off"], 2),
            "≥ 0.90",
            s["drain_ratio_on_vs_off"] >= 0.9,
        )
    if d := _load("p9_connections"):
        s, meta["p9"] = d["summary"], d
        ok = s["questboard_healthz_p95_ms"] <= 50 and (s["questboard_update_p99_ms"] or 1e9) <= 20
        row(
            "P9",
            f"/healthz p95 / live update p99 ms, {s['idle_clients']:,} idle clients + "
            f"{s['slow_connections']:,} slow-header held",
            f"{_f(s['questboard_healthz_p95_ms'], 1)} / {_f(s['questboard_update_p99_ms'], 1)}",
            f"{_f(s['gthread_healthz_p95_ms'], 0)} / {_f(s['gthread_update_p99_ms'], 1)}",
            "the server before: 1 gthread process, 100 threads",
            _f(s["questboard_healthz_p95_ms"] / s["gthread_healthz_p95_ms"], 3),
            "p95 ≤ 50, p99 ≤ 20",
            ok,
        )
    header = [
        "| | metric | Questboard | baseline | baseline is | ratio | target |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines = header + rows
    if meta:
        any_result = next(iter(meta.values()))
        m = any_result["machine"]
        lines += [
            "",
            f"Machine: {m['nproc']} cores, {m['ram_gib']} GiB RAM, Linux {m['kernel']}; Python {m['python']}, "
            f"celery {m['celery']}, kombu {m['kombu']}, redis-py {m['redis_py']}, redis-server {m['redis_server']}, "
            f"SQLAlchemy {m['sqlalchemy']}, SQLite {m['sqlite']}, Flask-SocketIO {m['flask_socketio']}, "
            f"python-socketio {m['python_socketio']}, gunicorn {m['gunicorn']}.",
            "",
            "Commands and runs (medians of the runs; each ratio is the median of per-run ratios):",
            "",
        ]
        for key, d in sorted(meta.items()):
            lines.append(
                f"- {key.upper()}: `{d['command'].strip()}` — {d['runs']} runs, database {d.get('db', 'sqlite')}, "
                f"{d['elapsed_s']:.0f} s, finished {d['finished_at']} (load average at start "
                f"{d['machine']['loadavg_at_start']:.2f}"
                + (f"; code: {d['machine']['git']}" if d["machine"].get("git") else "")
                + ")"
            )
    return "\n".join(lines)


def render_prototypes() -> str | None:
    """The prototype table from ``profile_p1_prototypes.json`` (``profile_p1 --prototypes ...``)."""
    d = _load("profile_p1_prototypes")
    if not d or "prototypes" not in d["summary"]:
        return None
    lines = [
        "| prototype | what it changes | jobs/s | gain (same run) | × plain | CPU ms/job: total (main + pool) | CPU saved | Redis cmds/job |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, p in d["summary"]["prototypes"].items():
        lines.append(
            f"| `{name}` | {p['what']} | {_f(p['jobs_per_s'], 0)} | {_f(p['gain_vs_unchanged'], 2)}× | "
            f"{_f(p['ratio_vs_plain_same_run'], 2)} | {_f(p['cpu_ms_per_job'], 2)} "
            f"({_f(p['cpu_main_ms_per_job'], 2)} + {_f(p['cpu_children_ms_per_job'], 2)}) | "
            f"{_f(100 * p['cpu_saved_vs_unchanged'], 0)} % | {_f(p['redis_calls_per_job'], 1)} |"
        )
    lines.append("")
    lines.append(
        f"`{d['command'].strip()}` — {d['runs']} runs, {d['elapsed_s']:.0f} s, finished {d['finished_at']}."
    )
    return "\n".join(lines)


def _replace(text: str, marker: str, body: str) -> str:
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        return f"{before}{start}\n{body}\n{end}{after}"
    return text + f"\n{start}\n{body}\n{end}\n"


def write_doc() -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    text = _replace(text, "results", render())
    protos = render_prototypes()
    if protos:
        text = _replace(text, "prototypes", protos)
    DOC.write_text(text)
    print(f"wrote the results tables into {DOC}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="", help="comma-separated: p1,p2,...")
    p.add_argument("--render-only", action="store_true")
    p.add_argument("--db", choices=["sqlite", "postgres"], default=None)
    args = p.parse_args(argv)
    failed: list[str] = []
    if not args.render_only:
        names = [n for n in (args.only.split(",") if args.only else BENCHMARKS) if n]
        extra = ["--db", args.db] if args.db else []
        failed = [n for n in names if run_one(n, args.quick, extra) != 0]
        if failed:
            print(f"failed: {', '.join(failed)}", file=sys.stderr)
    if args.quick:
        _SOURCE["dir"] = RESULTS / "quick"
        print(render())  # a smoke test's numbers do not go into BENCHMARKS.md
    else:
        write_doc()
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
