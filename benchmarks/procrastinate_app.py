"""The P1c baseline: procrastinate (PostgreSQL-backed, durable per-job state) with one no-op task.

``BENCH_PG_CONNINFO`` (required) is the libpq connection string of the benchmark's own database.
Installed for benchmarks only (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import os

import procrastinate

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=os.environ.get("BENCH_PG_CONNINFO", "")),
)


@app.task(name="bench.noop", queue="bench")
def noop(i: int = 0) -> None:
    """Does nothing (the P1c baseline)."""
    return None
