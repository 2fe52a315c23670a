"""Engine and session factory; Alembic upgrade."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as exc_mod
from sqlalchemy.orm import Session, sessionmaker

from shared import defaults

log = logging.getLogger("questboard.db")
T = TypeVar("T")
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes writers wait instead of failing.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


# A PostgreSQL that does not answer fails a connect within DB_CONNECT_TIMEOUT_S; keepalives and
# tcp_user_timeout drop a connection whose peer vanished (see docs/operations.md "Faults and recovery").
_PG_CONNECT_ARGS = {
    "connect_timeout": defaults.DB_CONNECT_TIMEOUT_S,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # milliseconds
}


def probe_connect_args(url: str) -> dict[str, object]:
    """The connect arguments of the engines here, for an engine of its own (a health probe's)."""
    return {} if url.startswith("sqlite") else dict(_PG_CONNECT_ARGS)


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only when it sat idle over ``DB_PING_IDLE_S`` (one that was
    just checked in is alive: pinging it too cost a round trip per transaction). A failed ping makes the
    pool replace the connection with a new one, as ``pool_pre_ping`` would."""

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["qb_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("qb_idle_since")
        if idle_since is None or time.monotonic() - idle_since < defaults.DB_PING_IDLE_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)  # looked up now: the web wraps it in a deadline
        except Exception as exc:
            raise exc_mod.DisconnectionError(repr(exc)) from exc
        if not alive:
            raise exc_mod.DisconnectionError("ping failed")


# SQLSTATEs of a transaction the server rolled back whole: a deadlock's victim, a serialization failure.
_ROLLED_BACK = frozenset({"40P01", "40001"})


def rolled_back(exc: BaseException) -> bool:
    """Whether ``exc`` says the server rolled the whole transaction back to settle a conflict with
    another one (PostgreSQL's deadlock victim, a serialization failure): nothing of it was stored, so
    running it again cannot apply anything twice. Never for SQLite, nor for a COMMIT whose fate is
    unknown (40003)."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _ROLLED_BACK


def rerun_if_rolled_back(transaction: Callable[[], T], what: str, **extra: Any) -> T:
    """``transaction()``, run again (up to ``ROLLED_BACK_RETRIES`` times) while the database rolled it back
    whole (``rolled_back``); any other error, or the last rollback, reaches the caller."""
    for tries_left in range(defaults.ROLLED_BACK_RETRIES, -1, -1):
        try:
            return transaction()
        except exc_mod.OperationalError as exc:
            if not (tries_left and rolled_back(exc)):
                raise
            log.info(f"{what} rolled back by the database runs again", extra={**extra, "error": repr(exc)})
    raise AssertionError("unreachable")


_engines: dict[str, Engine] = {}
_sessionmakers: dict[str, sessionmaker[Session]] = {}


def get_engine(url: str) -> Engine:
    """One engine per URL per process."""
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            event.listen(engine, "connect", _on_sqlite_connect)
        else:
            engine = create_engine(
                url,
                pool_size=10,
                max_overflow=20,
                pool_timeout=defaults.DB_POOL_TIMEOUT_S,
                connect_args=_PG_CONNECT_ARGS,
            )
            _ping_when_idle(engine)
        _engines[url] = engine
    return engine


def get_sessionmaker(url: str) -> sessionmaker[Session]:
    maker = _sessionmakers.get(url)
    if maker is None:
        maker = _sessionmakers[url] = sessionmaker(bind=get_engine(url), expire_on_commit=False)
    return maker


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class _SqliteWriteGate:
    """Queues this host's SQLite writers on a file lock instead of SQLite's busy handler.

    SQLite has one write lock per database, and a writer that finds it taken sleeps in the busy handler
    (1, 2, 5, 10 ms ... back-off) even when the holder is done 50 us later. Writers that hold this gate
    (a thread lock for this process's threads, then ``flock`` on ``<database>-writer.lock`` for the
    other processes) wait in the kernel and wake the moment it is released. Writers that do not take it
    still work: they meet the gated ones at SQLite's own lock, as before.
    """

    def __init__(self, path: str) -> None:
        self._path = path + "-writer.lock"
        self._thread_lock = threading.Lock()
        self._fd = -1

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            if self._fd < 0:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            _flock_exclusive(self._fd)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *_: object) -> None:
        import fcntl

        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


def _flock_exclusive(fd: int) -> None:
    """``flock(LOCK_EX)``; in an evented (gevent) process a taken lock is waited for on a real thread, so
    the process's other requests go on meanwhile instead of stopping behind a blocking system call."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        from gevent import get_hub

        get_hub().threadpool.apply(fcntl.flock, (fd, fcntl.LOCK_EX))
    else:
        fcntl.flock(fd, fcntl.LOCK_EX)


_gates: dict[tuple[int, str], AbstractContextManager[None]] = {}


def write_gate(url: str) -> AbstractContextManager[None]:
    """The gate short write transactions take on ``url``: a host-wide queue on SQLite, nothing elsewhere.

    One per process (a forked child opens its own lock file: ``flock`` locks belong to the open file,
    which a fork would share).
    """
    key = (os.getpid(), url)
    gate = _gates.get(key)
    if gate is None:
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
        gate = _SqliteWriteGate(path) if path and path != ":memory:" else nullcontext()
        _gates[key] = gate
    return gate


def forget_engines() -> None:
    """Drop connections inherited from a parent process without closing them (call after fork)."""
    for engine in _engines.values():
        engine.dispose(close=False)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Apply every Alembic migration to the database at ``url`` (idempotent)."""
    from alembic import command

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")
