"""The fair-share state read (shared.fairshare.STATE) against the backlog already sent to the broker.

Fills a fresh database (SQLite, or PostgreSQL with --db postgres) with 1,000, then 20,000, then 100,000
queued jobs that are not held (as a backlog sent before fair share was on, or by a broker-loss resend),
and times the read each submit, send and refill makes (mean of 20, after 3 warm-up reads).

    python -m benchmarks.fairshare_read [--db sqlite|postgres]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks import harness as h


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = p.parse_args()
    from shared import fairshare
    from shared.db import get_engine, upgrade

    if args.db == "sqlite":
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='qb-fsread-')) / 'q.db'}"
    else:
        import psycopg

        name = "qb_bench_fsread_" + os.urandom(4).hex()
        with psycopg.connect(h.PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = h.PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    upgrade(url)
    [(user_id, _token)] = h.make_users(url, 1)
    engine = get_engine(url)
    total = 0
    for size in (1_000, 20_000, 100_000):
        h.insert_jobs(url, user_id, size - total)
        total = size
        with engine.connect() as conn:
            if args.db == "postgres":
                conn.exec_driver_sql("ANALYZE jobs")
            params = fairshare.state_params("default")
            for _ in range(3):
                conn.execute(fairshare.STATE, params).one()
            started = time.perf_counter()
            for _ in range(20):
                row = conn.execute(fairshare.STATE, params).one()
            ms = 1000 * (time.perf_counter() - started) / 20
        state = tuple(row)
        label = f"{args.db}: {size:>7,} sent jobs waiting"
        print(f"{label}: {ms:.2f} ms a read; (in flight, running, held): {state}")
    engine.dispose()
    if args.db == "postgres":
        import psycopg

        with psycopg.connect(h.PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
