# ruff: noqa: E501
"""P9 — held connections: /healthz p95 and live-update p99 while 5,000 idle Socket.IO clients and 500 slow-header connections are held.

Questboard: the web as `questboard web` runs it (shared.webserver: gunicorn gevent, WEB_CONCURRENCY = one process
per core). Load, from one process (tests.idle_clients, asyncio raw sockets): `--idle` websockets connected
to /jobs with a valid token and then idle (they answer Engine.IO pings), plus `--slow` HTTP requests whose
header lines arrive one a second and never end (reopened whenever the server cuts them). Once they are
held (or after `--hold-wait` s if the server never takes them all), for `--seconds`: GET /healthz one at a
time (2 s client timeout; a timeout counts as 2,000 ms) and a worker-style publisher (shared.publisher,
through Redis) sends `job:update` at `--rate`/s to one python-socketio client subscribed to that job
(websocket), which records publish → receive. Baseline in the same run, same Redis, same load: the server
shipped before (one gthread process, 100 threads, Socket.IO in threading mode).

    python -m benchmarks.p9_connections [--runs 3] [--idle 5000] [--slow 500] [--seconds 10]
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import requests
import socketio

from benchmarks import harness as h

HEALTHZ_TIMEOUT_S = 2.0


def held(load: h.ManagedProcess) -> dict[str, int]:
    lines = [line for line in load.log_path.read_text().splitlines() if line.startswith("{")]
    return json.loads(lines[-1])["open"] if lines else {}


def measure(
    base: str, token: str, redis_url: str, job: dict[str, Any], seconds: float, rate: float
) -> dict[str, Any]:
    from shared.publisher import SocketIOPublisher

    latencies: list[float] = []
    sio = socketio.Client(reconnection=False)
    sio.on(
        "job:update",
        lambda d: d.get("sent_at") and latencies.append(time.time() - d["sent_at"]),
        namespace="/jobs",
    )
    out: dict[str, Any] = {}
    try:
        sio.connect(
            base, namespaces=["/jobs"], auth={"token": token}, transports=["websocket"], wait_timeout=10
        )
        sio.call("subscribe", {"job_id": job["id"]}, namespace="/jobs", timeout=10)
        out["live_client"] = "connected"
    except Exception as exc:  # the baseline may not take one more connection
        out["live_client"] = f"failed: {type(exc).__name__}: {exc}"
    stop = threading.Event()
    sent = [0]

    def publish() -> None:
        pub = SocketIOPublisher(redis_url)
        while not stop.is_set():
            pub.job_update({**job, "progress": sent[0] % 100, "sent_at": time.time()}, job["_user_id"])
            sent[0] += 1
            stop.wait(1.0 / rate)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    healthz: list[float] = []
    failed = 0
    session = requests.Session()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        try:
            session.get(base + "/healthz", timeout=HEALTHZ_TIMEOUT_S).raise_for_status()
            healthz.append(1000 * (time.perf_counter() - t0))
        except requests.RequestException:
            failed += 1
            healthz.append(1000 * HEALTHZ_TIMEOUT_S)
            session = requests.Session()
        time.sleep(0.02)
    stop.set()
    publisher.join()
    time.sleep(0.5)  # the last updates in flight
    if sio.connected:
        sio.disconnect()
    lat_ms = [1000 * x for x in latencies]
    return {
        **out,
        "healthz_requests": len(healthz),
        "healthz_failed": failed,
        "healthz_p50_ms": h.percentile(healthz, 50),
        "healthz_p95_ms": h.percentile(healthz, 95),
        "updates_sent": sent[0],
        "updates_received": len(lat_ms),
        "update_p50_ms": h.percentile(lat_ms, 50) if lat_ms else None,
        "update_p99_ms": h.percentile(lat_ms, 99) if lat_ms else None,
        "update_max_ms": max(lat_ms) if lat_ms else None,
        "updates_over_20_ms": sum(x > 20 for x in lat_ms),
    }


def one(
    stack: h.Stack, server: str, env: dict[str, str], token: str, redis_url: str, job: dict[str, Any], a: Any
) -> dict[str, Any]:
    web, base = stack.web(env, server=server)
    argv = [
        "-m",
        "tests.idle_clients",
        base,
        f"--authenticated={a.idle}",
        f"--token={token}",
        f"--slow={a.slow}",
    ]
    load = stack.python(f"idle-{server}-{web.name}", [*argv, "--ramp-per-s", str(a.ramp)])
    began = time.monotonic()
    try:
        h.wait_for(
            lambda: held(load).get("authenticated", 0) >= a.idle and held(load).get("slow", 0) >= a.slow,
            a.hold_wait,
            0.5,
            what=f"{server}: {a.idle} idle clients and {a.slow} slow requests held",
        )
        reached = True
    except TimeoutError:
        reached = False
    holding = held(load)
    h.log(f"{server}: holding {holding} after {time.monotonic() - began:.0f} s (all: {reached})")
    result = {"held": holding, "all_held": reached, **measure(base, token, redis_url, job, a.seconds, a.rate)}
    result["held_during"] = held(load)
    stack.stop(load)
    stack.stop(web)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = h.parser(__doc__.splitlines()[0], deadline_s=900)
    p.add_argument("--idle", type=int, default=5000, help="idle authenticated Socket.IO clients")
    p.add_argument("--slow", type=int, default=500, help="slow-header connections")
    p.add_argument("--seconds", type=float, default=10.0, help="measurement per server and run")
    p.add_argument("--rate", type=float, default=50.0, help="live updates per second")
    p.add_argument("--ramp", type=float, default=1000.0, help="new load connections per second")
    p.add_argument("--hold-wait", type=float, default=60.0, help="seconds to wait for the load to be held")
    p.add_argument("--servers", default="questboard,gthread", help="which servers to measure, in order")
    args = p.parse_args(argv)

    def body(stack: h.Stack) -> dict[str, Any]:
        from shared.db import get_sessionmaker
        from shared.models import Job
        from shared.serialize import job_to_dict

        redis_srv = stack.start_redis()
        db_url = stack.database_url(args.db, "p9")
        [(user_id, token)] = h.make_users(db_url, 1)
        [job_id] = h.insert_jobs(db_url, user_id, 1, status="running")
        with get_sessionmaker(db_url)() as session:
            job = {**job_to_dict(session.get(Job, job_id)), "_user_id": user_id}
        env = stack.env(redis_srv.url, db_url)
        runs = []
        for r in range(args.runs):
            run = {
                server: one(stack, server, env, token, redis_srv.url, job, args)
                for server in args.servers.split(",")
            }
            for server, res in run.items():
                h.log(
                    f"run {r + 1}: {server} healthz p95 {res['healthz_p95_ms']:.1f} ms ({res['healthz_failed']} failed), "
                    f"update p99 {res['update_p99_ms']} ms max {res['update_max_ms']} ms, "
                    f"{res['updates_over_20_ms']} over 20 ms ({res['updates_received']}/{res['updates_sent']})"
                )
            runs.append(run)

        def med(server: str, key: str) -> float | None:
            values = [r[server][key] for r in runs if server in r and r[server][key] is not None]
            return h.median(values) if values else None

        summary = {
            "idle_clients": args.idle,
            "slow_connections": args.slow,
            **{
                f"{s}_{k}": med(s, k)
                for s in ("questboard", "gthread")
                for k in (
                    "healthz_p95_ms",
                    "healthz_failed",
                    "update_p99_ms",
                    "updates_received",
                    "updates_sent",
                )
            },
            **{
                f"{s}_all_held": all(r[s]["all_held"] for r in runs if s in r)
                for s in ("questboard", "gthread")
            },
        }
        return {"summary": summary, "per_run": runs}

    return h.run_benchmark("p9_connections", args, body)


if __name__ == "__main__":
    main(sys.argv[1:])
