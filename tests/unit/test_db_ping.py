"""PostgreSQL connections are pinged before use only after sitting idle (``shared.db``)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from shared import defaults
from shared.db import get_engine


def test_only_an_idle_connection_is_pinged_and_a_dead_one_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = get_engine(postgres_url)
    pings: list[Any] = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(conn) or real_ping(conn))
    with engine.connect() as conn:
        first_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    for _ in range(3):  # just checked in: used again without a ping
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() == first_pid
    assert pings == []

    # The server ends the pooled connection while it sits idle (from a connection outside the pool).
    with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
    monkeypatch.setattr(defaults, "DB_PING_IDLE_S", 0.0)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    assert pings, "an idle connection is pinged before use"
