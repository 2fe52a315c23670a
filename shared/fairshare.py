"""Fair share within a queue: the database releases jobs in turns, the broker holds only a short buffer.

A queue has at most ``bound`` jobs sent to the broker and not yet started ("in flight"). A job sent while
its queue is below the bound (and nobody's jobs are held there) goes out at once, as before; otherwise it
is *held*: still ``queued`` for its user, but kept in the database (``jobs.held``). Whenever a job of the
queue starts, after a hold, and in every worker's maintenance pass, ``refill`` sends held jobs until the
queue is back at its bound, in turns: the next one is the oldest held job of the user with the fewest of
the queue's jobs started recently (plus in flight). System jobs are all owned by the system user, so
they count as one user.

Several processes may refill at once: a held job is released by one conditional UPDATE (``held`` true ->
false), so it is sent once; the bound itself is kept by a per-queue advisory lock on PostgreSQL and the
host's write gate on SQLite. A job released and then not sent (a broker outage, or a crash right after
the commit) is an ordinary queued job without a message: the outbox (``needs_dispatch``) or the lost sweep
sends it (workers.unacked), exactly as for any other job. docs/operations.md, "Fair share", has the design
and its cost.
"""

from __future__ import annotations

import heapq
import time
import zlib
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    bindparam,
    case,
    exists,
    false,
    func,
    literal_column,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from shared import defaults
from shared.db import write_gate
from shared.jobstate import Machine, Row
from shared.jobtypes import QUEUES
from shared.models import Job, utcnow
from shared.settings import get_settings
from shared.states import Status

JOBS = Job.__table__
_Q = bindparam("b_queue", type_=JOBS.c.queue.type)
_U = bindparam("b_user", type_=JOBS.c.user_id.type)
_X = bindparam("b_except", type_=JOBS.c.id.type)
_SINCE = bindparam("b_since", type_=JOBS.c.started_at.type)
# The statuses are literals, not parameters: PostgreSQL's partial indexes for these reads (migration 0015)
# match only a condition the planner can see, in the generic plans of prepared statements too.
QUEUED = JOBS.c.status == literal_column(f"'{Status.QUEUED.value}'")
RUNNING = JOBS.c.status == literal_column(f"'{Status.RUNNING.value}'")
HELD = (JOBS.c.queue == _Q, QUEUED, JOBS.c.held == true())
SENT = (JOBS.c.queue == _Q, QUEUED, JOBS.c.held == false(), JOBS.c.needs_dispatch == false())

# One round trip: jobs in flight (but the one being sent), jobs running, whether any job is held. The
# columns on their own are also read with a submit's other reads (shared.jobs.SUBMIT_READ).
#
# The in-flight count stops at the queue's bound (``bound``, written in SQL from the running count and
# ``state_params``' two numbers): the gate and the refill only ask whether the queue is full and by how
# much it is not, so a read never walks more than the bound's rows. Counting them all cost O(backlog) on
# every submit, send and refill once a backlog had been sent (before fair share was on, by an import, a
# broker-loss resend): 31 ms a read with 100,000 jobs in flight, on SQLite and PostgreSQL alike.
_RUNNING_COUNT = select(func.count()).select_from(JOBS).where(JOBS.c.queue == _Q, RUNNING).scalar_subquery()
_PER = bindparam("b_bound_per", type_=Integer())
_MIN = bindparam("b_bound_min", type_=Integer())
_BOUND = case((_PER * _RUNNING_COUNT > _MIN, _PER * _RUNNING_COUNT), else_=_MIN)
STATE_COLUMNS = (
    select(func.count())
    .select_from(select(JOBS.c.id).where(*SENT, JOBS.c.id != _X).limit(_BOUND).subquery())
    .scalar_subquery(),
    _RUNNING_COUNT,
    exists().where(*HELD),
)
STATE = select(*STATE_COLUMNS)
# The users with held jobs: a loose index scan (one index seek per user, not one step per held job).
WAITING_USERS = text(
    "WITH RECURSIVE waiting(uid) AS ("
    " SELECT MIN(user_id) FROM jobs WHERE queue = :b_queue AND status = :b_status AND held = :b_held"
    " UNION ALL"
    " SELECT (SELECT MIN(j.user_id) FROM jobs j WHERE j.queue = :b_queue AND j.status = :b_status"
    " AND j.held = :b_held AND j.user_id > waiting.uid) FROM waiting WHERE waiting.uid IS NOT NULL"
    ") SELECT uid FROM waiting WHERE uid IS NOT NULL LIMIT :b_limit"
)
# A waiting user's standing: recent starts (capped), jobs in flight, the oldest held job's creation.
USER_TURN = select(
    select(func.count())
    .select_from(
        select(JOBS.c.id)
        .where(JOBS.c.queue == _Q, JOBS.c.user_id == _U, JOBS.c.started_at >= _SINCE)
        .limit(defaults.FAIR_SHARE_RECENT_CAP)
        .subquery()
    )
    .scalar_subquery(),
    select(func.count()).select_from(JOBS).where(*SENT, JOBS.c.user_id == _U).scalar_subquery(),
    select(func.min(JOBS.c.created_at)).where(*HELD, JOBS.c.user_id == _U).scalar_subquery(),
)
# The ``held`` flag is fair share's own: holding or releasing a job changes no status (it stays ``queued``,
# no event, nothing published), so these two are not moves of the state machine; every move out of
# ``queued`` clears the flag (shared.jobstate.statements), and the real send is ``Machine.send``.
HOLD = (
    update(JOBS).where(JOBS.c.id == _X, QUEUED, JOBS.c.held == false()).values(held=True).returning(JOBS.c.id)
)
RELEASE = (
    update(JOBS)
    .where(JOBS.c.id.in_(bindparam("b_ids", expanding=True)), QUEUED, JOBS.c.held == true())
    .values(held=False, updated_at=bindparam("b_now", type_=JOBS.c.updated_at.type))
    .returning(JOBS.c.id, JOBS.c.type, JOBS.c.queue)
)


# (database, queue) -> monotonic time until which this process's starts skip the refill's read: it found
# nothing held there (a hold in this process ends it at once; others' refill after their hold, and the
# maintenance pass covers the rest).
_quiet_until: dict[tuple[str, str], float] = {}


def enabled() -> bool:
    return get_settings().fair_share


def _bound_terms() -> tuple[int, int]:
    """The bound's rule as ``(per running job, least)``: ``max(least, per * running)``. The setting is a
    fixed bound (per 0, least the setting). ``bound`` and ``STATE``'s stop (``state_params``) both use it."""
    configured = get_settings().fair_share_in_flight
    if configured:
        return 0, configured
    return defaults.FAIR_SHARE_PER_PROCESS, defaults.FAIR_SHARE_MIN_IN_FLIGHT


def bound(running: int) -> int:
    """The queue's in-flight bound: the setting, else two per running job (at least the minimum)."""
    per, least = _bound_terms()
    return max(least, per * running)


def state_params(queue: str, except_id: str = "") -> dict[str, Any]:
    """The parameters of ``STATE`` / ``STATE_COLUMNS`` for ``queue`` (its count stops at ``bound``)."""
    per, least = _bound_terms()
    return {"b_queue": queue, "b_except": except_id, "b_bound_per": per, "b_bound_min": least}


def _engine(sessions: sessionmaker[Session]) -> tuple[Engine, str]:
    engine: Engine = sessions.kw["bind"]
    return engine, engine.url.render_as_string(hide_password=False)


def _state(conn: Connection, queue: str) -> tuple[int, int, bool]:
    """The queue's jobs in flight, its bound and whether any job is held (a refill's read)."""
    in_flight, running, any_held = conn.execute(STATE, state_params(queue)).one()
    return in_flight, bound(running), bool(any_held)


def holds(in_flight: int, running: int, any_held: bool) -> bool:
    """Whether a job sent now waits for its turn, from its queue's ``STATE_COLUMNS`` (the gate's one test).
    A submit reads them in its own transaction, so that the new row goes in held (one commit; a hold after
    the insert took a second transaction and two more reads), and then calls ``after_hold`` instead of
    sending."""
    return enabled() and (bool(any_held) or in_flight >= bound(running))


def after_hold(machine: Machine, queue: str) -> None:
    """A job of ``queue`` was committed held: refill, since the queue may have drained meanwhile."""
    _quiet_until.pop((machine.url, queue), None)
    refill(machine, queue)


def send(machine: Machine, job: Row | dict[str, Any]) -> bool:
    """Send the job's message now, or hold it for its owner's turn (False only when the broker failed):
    the gate of the machines of the submits, the workers and the workflows (``Machine.enqueue``)."""
    job_id, job_type, queue = (
        (job["id"], job["type"], job["queue"]) if isinstance(job, dict) else (job.id, job.type, job.queue)
    )
    if enabled():
        engine, url = machine.engine, machine.url
        with engine.connect() as conn:
            state = conn.execute(STATE, state_params(queue, job_id)).one()
        if holds(*state):
            with write_gate(url), engine.begin() as conn:
                conn.execute(HOLD, {"b_except": job_id})
            after_hold(machine, queue)
            return True
    return machine.send(job)


def refill(machine: Machine, queue: str) -> int:
    """Send held jobs of ``queue``, in turns, until it is back at its bound. Returns how many were sent."""
    if not enabled():
        return 0
    engine, url = machine.engine, machine.url
    if time.monotonic() < _quiet_until.get((url, queue), 0.0):
        return 0
    with engine.connect() as conn:  # the common case, read without any lock: nothing to do
        in_flight, limit, any_held = _state(conn, queue)
    if not any_held:
        _quiet_until[(url, queue)] = time.monotonic() + defaults.FAIR_SHARE_QUIET_S
        return 0
    if limit - in_flight < max(1, limit // defaults.FAIR_SHARE_REFILL_DIVISOR):
        return 0
    with write_gate(url), engine.begin() as conn:
        if engine.dialect.name == "postgresql" and not conn.scalar(
            select(func.pg_try_advisory_xact_lock(zlib.crc32(f"questboard-fair:{queue}".encode())))
        ):
            return 0  # another process is refilling this queue right now
        in_flight, limit, _ = _state(conn, queue)
        ids = _pick(conn, queue, limit - in_flight, utcnow())
        released = conn.execute(RELEASE, {"b_ids": ids, "b_now": utcnow()}).all() if ids else []
    order = {job_id: n for n, job_id in enumerate(ids)}
    for row in sorted(released, key=lambda r: order[r.id]):  # the broker's FIFO keeps the turns
        machine.send({"id": row.id, "type": row.type, "queue": row.queue})
    return len(released)


def refill_all(machine: Machine) -> int:
    """The maintenance pass's safety net: refill every queue (covers a refill nobody triggered)."""
    return sum(refill(machine, queue) for queue in QUEUES)


def held_counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Jobs held for their turn, per queue (they are waiting like the broker's messages)."""
    with sessions() as session:
        rows = session.execute(
            select(JOBS.c.queue, func.count()).where(QUEUED, JOBS.c.held == true()).group_by(JOBS.c.queue)
        )
        return {queue: count for queue, count in rows}


def _waiting_users(conn: Connection, queue: str) -> list[int]:
    params = {
        "b_queue": queue,
        "b_status": Status.QUEUED.value,
        "b_held": True,
        "b_limit": defaults.FAIR_SHARE_MAX_USERS,
    }
    return [uid for (uid,) in conn.execute(WAITING_USERS, params)]


def _standings(conn: Connection, queue: str, users: list[int], now: datetime) -> list[tuple[int, Any, int]]:
    """(recent starts + in flight, oldest held job's creation, user) per waiting user: lowest goes first."""
    since = now - timedelta(seconds=defaults.FAIR_SHARE_WINDOW_S)
    rows = []
    for uid in users:
        recent, sent, oldest = conn.execute(
            USER_TURN, {"b_queue": queue, "b_user": uid, "b_since": since}
        ).one()
        rows.append((recent + sent, oldest, uid))
    return sorted(rows)


def _pick(conn: Connection, queue: str, room: int, now: datetime) -> list[str]:
    """Up to ``room`` held job ids of ``queue`` in turn order (see the module doc)."""
    if room <= 0:
        return []
    users = _waiting_users(conn, queue)
    if len(users) <= 1:
        turns = users * room  # one user waiting: its oldest jobs, no standings to weigh
    else:
        heap = _standings(conn, queue, users, now)
        turns = []
        for _ in range(room):
            score, oldest, uid = heapq.heappop(heap)
            turns.append(uid)
            heapq.heappush(heap, (score + 1, oldest, uid))
    wanted: dict[int, int] = {}
    for uid in turns:
        wanted[uid] = wanted.get(uid, 0) + 1
    oldest_first: dict[int, deque[str]] = {}
    for uid, count in wanted.items():
        stmt = (
            select(JOBS.c.id)
            .where(*HELD, JOBS.c.user_id == _U)
            .order_by(JOBS.c.created_at)  # the index's own order: no sort (ties: insertion order)
            .limit(count)
        )
        oldest_first[uid] = deque(conn.scalars(stmt, {"b_queue": queue, "b_user": uid}))
    return [oldest_first[uid].popleft() for uid in turns if oldest_first[uid]]


@dataclass(frozen=True)
class Turn:
    """Where a held job stands in its queue's turns (for "why is it waiting")."""

    queue: str
    users_waiting: int  # users with held jobs in the queue, its owner included
    users_ahead: int  # of them, those whose turn comes before its owner's
    own_ahead: int  # its owner's held jobs in the queue that go before it

    def describe(self) -> str:
        others = f"{self.users_ahead} other user(s) go first" if self.users_ahead else "its owner is next"
        own = f", then {self.own_ahead} older job(s) of the same owner" if self.own_ahead else ""
        return f"Waiting for its fair-share turn in queue {self.queue}: {others}{own}"


def turn_of(sessions: sessionmaker[Session], job_id: str) -> Turn | None:
    """The job's fair-share turn, or None when it is not held (not queued, or already sent)."""
    engine, _ = _engine(sessions)
    with engine.connect() as conn:
        job = conn.execute(select(JOBS).where(JOBS.c.id == job_id, QUEUED, JOBS.c.held == true())).first()
        if job is None:
            return None
        users = _waiting_users(conn, job.queue)
        standings = _standings(conn, job.queue, users, utcnow())
        mine = next((s for s in standings if s[2] == job.user_id), None)
        ahead = sum(1 for s in standings if mine is not None and s < mine)
        own = conn.scalar(
            select(func.count())
            .select_from(JOBS)
            .where(
                *HELD,
                JOBS.c.user_id == job.user_id,
                (JOBS.c.created_at < job.created_at)
                | ((JOBS.c.created_at == job.created_at) & (JOBS.c.id < job.id)),
            ),
            {"b_queue": job.queue},
        )
    return Turn(job.queue, len(standings), ahead, own or 0)
