# ruff: noqa: E501
"""P3 — relay: worker-side publish -> python-socketio client receive, p50/p99 at 1,000 events/s, 100 clients.

100 jobs (status running) of one user; 100 python-socketio clients (websocket transport, 2 client
processes x 50), each subscribed with `subscribe` to one job. A publisher process emits `job:update`
round-robin over the 100 jobs at 1,000 events/s for `--seconds`, through the real
`shared.publisher.SocketIOPublisher.job_update` (so 10 events/s reach each client); each event carries
its send time and the clients record receive - send (same machine clock). Targets, in the same run, on
the same Redis and the same gunicorn command (`questboard web`'s):
  questboard  the real web process (web.wsgi:app)
  bare        a minimal Flask-SocketIO relay (benchmarks.bare_web): write-only RedisManager -> room
  polling     HTTP GET /api/jobs/<id> by 100 pollers every 100 ms against the real web process while a
              writer changes one job's row every 10 ms (each job once a second); latency = time from the
              committed change to the first poll that shows it

    python -m benchmarks.p3_relay [--runs 3] [--seconds 10] [--rate 1000] [--clients 100]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks import harness as h

CLIENT_PROCS = 2


# ----- subprocess roles ----------------------------------------------------------------------------


def role_clients(a: argparse.Namespace) -> None:
    import socketio

    job_ids = json.loads(Path(a.jobs).read_text())
    lat: list[float] = []
    lock = threading.Lock()
    clients = []
    for job_id in job_ids:
        sio = socketio.Client(reconnection=False)

        def on_update(data: dict[str, Any]) -> None:
            sent = data.get("sent_at") if isinstance(data, dict) else None
            if sent is not None:
                d = time.time() - sent
                with lock:
                    lat.append(d)

        sio.on("job:update", on_update, namespace="/jobs")
        sio.connect(
            a.url,
            namespaces=["/jobs"],
            auth={"token": a.token} if a.token else None,
            transports=["websocket"],
            wait_timeout=20,
        )
        sio.emit("subscribe", {"job_id": job_id}, namespace="/jobs")
        clients.append(sio)
    time.sleep(1.0)  # let the subscriptions land
    Path(a.ready).write_text("ready")
    stop = Path(a.stop)
    deadline = time.monotonic() + a.max_seconds
    while not stop.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with lock:
        Path(a.result).write_text(json.dumps(lat))
    for sio in clients:
        try:
            sio.disconnect()
        except Exception:  # best effort
            pass
    os._exit(0)


def role_publisher(a: argparse.Namespace) -> None:
    jobs = json.loads(Path(a.jobs).read_text())
    if a.kind == "questboard":
        from shared.publisher import SocketIOPublisher

        pub = SocketIOPublisher(a.redis)

        def emit(job: dict[str, Any]) -> None:
            pub.job_update(job, job["_user_id"])
    else:
        import socketio

        mgr = socketio.RedisManager(a.redis, channel="bench-bare", write_only=True)

        def emit(job: dict[str, Any]) -> None:
            mgr.emit("job:update", job, namespace="/jobs", room=f"job:{job['id']}")

    total = int(a.rate * a.seconds)
    start = time.time() + 0.2
    late = 0
    for i in range(total):
        due = start + i / a.rate
        now = time.time()
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.01:
            late += 1
        job = dict(jobs[i % len(jobs)])
        job["progress"] = i % 100
        job["sent_at"] = time.time()
        emit(job)
    took = time.time() - start
    Path(a.result).write_text(json.dumps({"sent": total, "seconds": took, "late_by_10ms": late}))


def role_pollers(a: argparse.Namespace) -> None:
    """One thread per job: GET /api/jobs/<id> every ``interval`` s; latency of each new 'bench:<ts>' message."""
    job_ids = json.loads(Path(a.jobs).read_text())
    parts = urlsplit(a.url)
    lat: list[float] = []
    polls = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + a.seconds

    def poll(k: int, job_id: str) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        seen = None
        nxt = time.monotonic() + (k / len(job_ids)) * a.interval
        mine, n = [], 0
        while time.monotonic() < stop_at:
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            nxt += a.interval
            try:
                conn.request("GET", f"/api/jobs/{job_id}", headers={"Authorization": f"Bearer {a.token}"})
                body = json.loads(conn.getresponse().read())
            except (OSError, ValueError):
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                continue
            n += 1
            msg = body.get("message", "")
            if msg.startswith("bench:") and msg != seen:
                if seen is not None:  # the first value seen may predate the start
                    mine.append(time.time() - float(msg.split(":", 1)[1]))
                seen = msg
        with lock:
            lat.extend(mine)
            polls[0] += n

    threads = [threading.Thread(target=poll, args=(k, j), daemon=True) for k, j in enumerate(job_ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(a.seconds + 15)
    Path(a.result).write_text(json.dumps({"lat": lat, "polls": polls[0]}))


# ----- the benchmark -------------------------------------------------------------------------------


def stats(lat: list[float], expected: int) -> dict[str, float]:
    return {
        "p50_ms": 1000 * h.percentile(lat, 50),
        "p99_ms": 1000 * h.percentile(lat, 99),
        "max_ms": 1000 * max(lat, default=float("nan")),
        "received": len(lat),
        "expected": expected,
    }


def run_push(
    stack: h.Stack,
    tag: str,
    url: str,
    token: str | None,
    kind: str,
    redis_url: str,
    jobs: list[dict[str, Any]],
    a: argparse.Namespace,
) -> dict[str, Any]:
    work = stack.dir / tag
    work.mkdir()
    ids = [j["id"] for j in jobs]
    per = (len(ids) + CLIENT_PROCS - 1) // CLIENT_PROCS
    clients = []
    stop = work / "stop"
    for k in range(CLIENT_PROCS):
        chunk = work / f"jobs{k}.json"
        chunk.write_text(json.dumps(ids[k * per : (k + 1) * per]))
        argv = [
            "-m",
            "benchmarks.p3_relay",
            "--role",
            "clients",
            "--url",
            url,
            "--jobs",
            str(chunk),
            "--ready",
            str(work / f"ready{k}"),
            "--stop",
            str(stop),
            "--result",
            str(work / f"lat{k}.json"),
            "--max-seconds",
            str(a.seconds + 90),
        ]
        if token:
            argv += ["--token", token]
        clients.append(stack.python(f"clients-{tag}-{k}", argv))
    h.wait_for(
        lambda: (
            all((work / f"ready{k}").exists() for k in range(CLIENT_PROCS))
            or any(not c.alive() for c in clients)
        ),
        90,
        0.1,
        what="clients subscribed",
    )
    if any(not c.alive() for c in clients):
        raise RuntimeError("a client process died:\n" + "\n".join(c.output()[-2000:] for c in clients))
    jobs_file = work / "pubjobs.json"
    jobs_file.write_text(json.dumps(jobs))
    pub = stack.python(
        f"publisher-{tag}",
        [
            "-m",
            "benchmarks.p3_relay",
            "--role",
            "publisher",
            "--kind",
            kind,
            "--redis",
            redis_url,
            "--jobs",
            str(jobs_file),
            "--rate",
            str(a.rate),
            "--seconds",
            str(a.seconds),
            "--result",
            str(work / "pub.json"),
        ],
    )
    h.wait_for(lambda: not pub.alive(), a.seconds + 60, 0.1, what="publisher done")
    time.sleep(1.0)
    stop.write_text("stop")
    h.wait_for(lambda: all(not c.alive() for c in clients), 60, 0.1, what="clients done")
    lat: list[float] = []
    for k in range(CLIENT_PROCS):
        lat.extend(json.loads((work / f"lat{k}.json").read_text()))
    sent = json.loads((work / "pub.json").read_text())
    return {**stats(lat, sent["sent"]), "publisher": sent}


def run_polling(
    stack: h.Stack, tag: str, url: str, token: str, db_url: str, ids: list[str], a: argparse.Namespace
) -> dict[str, Any]:
    from sqlalchemy import update

    from shared.db import get_sessionmaker
    from shared.models import Job

    work = stack.dir / tag
    work.mkdir()
    jobs_file = work / "ids.json"
    jobs_file.write_text(json.dumps(ids))
    pollers = stack.python(
        f"pollers-{tag}",
        [
            "-m",
            "benchmarks.p3_relay",
            "--role",
            "pollers",
            "--url",
            url,
            "--token",
            token,
            "--jobs",
            str(jobs_file),
            "--interval",
            "0.1",
            "--seconds",
            str(a.seconds + 2),
            "--result",
            str(work / "poll.json"),
        ],
    )
    sessions = get_sessionmaker(db_url)
    step = 1.0 / len(ids)  # each job changes once a second
    changes = 0
    start = time.time()
    end = start + a.seconds + 1
    i = 0
    while time.time() < end:
        due = start + i * step
        if due > time.time():
            time.sleep(due - time.time())
        with sessions() as session:
            session.execute(
                update(Job).where(Job.id == ids[i % len(ids)]).values(message=f"bench:{time.time()!r}")
            )
            session.commit()
        changes += 1
        i += 1
    h.wait_for(lambda: not pollers.alive(), 60, 0.1, what="pollers done")
    res = json.loads((work / "poll.json").read_text())
    out = stats(res["lat"], changes)
    out["polls_per_s"] = res["polls"] / (a.seconds + 2)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = h.parser(__doc__.splitlines()[0], deadline_s=600)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--no-polling", action="store_true")
    # subprocess roles
    p.add_argument("--role", choices=["clients", "publisher", "pollers"])
    for opt in ("--url", "--token", "--jobs", "--ready", "--stop", "--result", "--kind", "--redis"):
        p.add_argument(opt)
    p.add_argument("--max-seconds", type=float, default=120)
    p.add_argument("--interval", type=float, default=0.1)
    args = p.parse_args(argv)
    if args.role:
        {"clients": role_clients, "publisher": role_publisher, "pollers": role_pollers}[args.role](args)
        return {}

    def body(stack: h.Stack) -> dict[str, Any]:
        from sqlalchemy import select

        from shared.db import get_sessionmaker
        from shared.models import Job
        from shared.serialize import job_to_dict

        redis_srv = stack.start_redis()
        db_url = stack.database_url(args.db, "p3")
        [(user_id, token)] = h.make_users(db_url, 1)
        ids = h.insert_jobs(db_url, user_id, args.clients, status="running")
        with get_sessionmaker(db_url)() as session:
            jobs = [
                {**job_to_dict(j), "_user_id": user_id}
                for j in session.scalars(select(Job).where(Job.id.in_(ids)))
            ]
        env = stack.env(redis_srv.url, db_url)
        _qb, qb_url = stack.web(env)
        _bare, bare_url = stack.web(env, app="benchmarks.bare_web:app")
        runs = []
        for r in range(args.runs):
            run = {}
            run["questboard"] = run_push(
                stack, f"qb{r}", qb_url, token, "questboard", redis_srv.url, jobs, args
            )
            h.log(
                f"run {r + 1}: questboard p50 {run['questboard']['p50_ms']:.2f} ms p99 {run['questboard']['p99_ms']:.2f} ms "
                f"({run['questboard']['received']}/{run['questboard']['expected']})"
            )
            run["bare"] = run_push(stack, f"bare{r}", bare_url, None, "bare", redis_srv.url, jobs, args)
            h.log(
                f"run {r + 1}: bare p50 {run['bare']['p50_ms']:.2f} ms p99 {run['bare']['p99_ms']:.2f} ms "
                f"({run['bare']['received']}/{run['bare']['expected']})"
            )
            if not args.no_polling:
                run["polling"] = run_polling(stack, f"poll{r}", qb_url, token, db_url, ids, args)
                h.log(
                    f"run {r + 1}: polling p50 {run['polling']['p50_ms']:.1f} ms p99 {run['polling']['p99_ms']:.1f} ms "
                    f"({run['polling']['polls_per_s']:.0f} polls/s)"
                )
            runs.append(run)

        def med(k: str, f: str) -> float:
            return h.median(r[k][f] for r in runs if k in r)

        summary = {
            "rate_events_per_s": args.rate,
            "clients": args.clients,
            "questboard_p50_ms": med("questboard", "p50_ms"),
            "questboard_p99_ms": med("questboard", "p99_ms"),
            "bare_p50_ms": med("bare", "p50_ms"),
            "bare_p99_ms": med("bare", "p99_ms"),
            "polling_p50_ms": med("polling", "p50_ms"),
            "polling_p99_ms": med("polling", "p99_ms"),
            "ratio_p99_vs_bare": h.median(r["questboard"]["p99_ms"] / r["bare"]["p99_ms"] for r in runs),
            "ratio_p50_vs_bare": h.median(r["questboard"]["p50_ms"] / r["bare"]["p50_ms"] for r in runs),
            "delivered_questboard": med("questboard", "received") / (args.rate * args.seconds),
            "delivered_bare": med("bare", "received") / (args.rate * args.seconds),
        }
        return {"summary": summary, "per_run": runs}

    return h.run_benchmark("p3_relay", args, body)


if __name__ == "__main__":
    main(sys.argv[1:])
