"""Fair share's gate and refill against a real database (SQLite and PostgreSQL), no broker.

The dispatcher records what would be sent; "starting" a job is the real claim. The end-to-end behaviour
with workers and Redis is in tests/reliability/test_fair_share.py.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import event, insert, select, text

from questboard.app import registry
from shared import defaults, fairshare
from shared.accounts import Accounts
from shared.db import get_engine, get_sessionmaker
from shared.jobs import JobService
from shared.lifecycle import Lifecycle
from shared.models import Job, new_id, utcnow
from shared.publisher import NullPublisher
from shared.waiting import waiting_reason
from tests.unit.test_job_service import RecordingDispatcher

BOUND = defaults.FAIR_SHARE_MIN_IN_FLIGHT


@pytest.fixture
def fair(database_url: str):
    dispatcher = RecordingDispatcher()
    service = JobService(
        database_url, registry(), NullPublisher(), dispatcher, user_job_limit=10_000, user_queued_limit=10_000
    )
    lifecycle = Lifecycle(database_url, NullPublisher(), dispatcher)
    return service, lifecycle, dispatcher, Accounts(database_url), get_sessionmaker(database_url)


def held_ids(sessions) -> set[str]:
    with sessions() as session:
        return set(session.scalars(select(Job.id).where(Job.held.is_(True))))


def start_sent(lifecycle: Lifecycle, dispatcher: RecordingDispatcher, done: set[str]) -> list[str]:
    """Claim every sent job not claimed yet, refilling after each start as a worker does."""
    started = []
    for job_id, _type, queue in list(dispatcher.sent):
        if job_id not in done and lifecycle.claim(job_id, "w@test", None) is not None:
            done.add(job_id)
            started.append(job_id)
            lifecycle.refill(queue)
    return started


def test_a_single_job_behind_a_backlog_is_sent_within_a_refill(fair):
    service, lifecycle, dispatcher, accounts, sessions = fair
    alice, bob = accounts.ensure_user("alice@example.com"), accounts.ensure_user("bob@example.com")
    backlog = [service.submit(alice, "diagnostics.probe", {})[0]["id"] for _ in range(60)]
    assert [s[0] for s in dispatcher.sent] == backlog[:BOUND]  # the fast path, then the rest held
    bob_job = service.submit(bob, "diagnostics.probe", {})[0]["id"]
    assert bob_job in held_ids(sessions)  # alice's jobs are held: bob waits his turn, not behind them
    order: list[str] = []
    done: set[str] = set()
    while bob_job not in done:
        order += start_sent(lifecycle, dispatcher, done)
    assert order.index(bob_job) <= BOUND + 1  # right after the buffer that was already sent
    assert Counter(s[0] for s in dispatcher.sent).most_common(1)[0][1] == 1  # nothing sent twice


def test_a_submit_past_the_bound_goes_in_held_in_one_commit(fair):
    """The gate's test is read in the submit's own transaction, so a job past the bound is inserted held:
    one commit per submit (a hold after the insert took a second transaction)."""
    service, _, dispatcher, accounts, sessions = fair
    alice = accounts.ensure_user("alice@example.com")
    for _ in range(BOUND):
        service.submit(alice, "diagnostics.probe", {})
    commits = []
    count = commits.append  # one bound method: event.remove needs the very object listen was given
    event.listen(service.machine.engine, "commit", count)
    try:
        job, created = service.submit(alice, "diagnostics.probe", {})
    finally:
        event.remove(service.machine.engine, "commit", count)
    assert created and job["status"] == "queued"
    assert len(commits) == 1
    assert held_ids(sessions) == {job["id"]} and job["id"] not in {s[0] for s in dispatcher.sent}


def test_two_backlogs_take_turns(fair):
    service, lifecycle, dispatcher, accounts, sessions = fair
    alice, bob = accounts.ensure_user("alice@example.com"), accounts.ensure_user("bob@example.com")
    owner = {}
    for user in (alice, bob):
        for _ in range(40):
            owner[service.submit(user, "diagnostics.probe", {})[0]["id"]] = user.id
    done: set[str] = set()
    order: list[str] = []
    while len(done) < 80:
        order += start_sent(lifecycle, dispatcher, done)
    # Alice's first BOUND went out before bob submitted; from then on bob catches up (fewest recent
    # starts), then they alternate: at no point is one user more than the buffer ahead (FIFO: 40).
    lead = [0]
    for job_id in order:
        lead.append(lead[-1] + (1 if owner[job_id] == alice.id else -1))
    assert max(abs(x) for x in lead) <= BOUND + 2
    assert max(abs(x) for x in lead[3 * BOUND : 60]) <= 3  # caught up: turn by turn
    assert not held_ids(sessions)


def test_concurrent_refills_send_each_held_job_once_and_keep_the_bound(fair):
    service, lifecycle, dispatcher, accounts, sessions = fair
    users = [accounts.ensure_user(f"u{n}@example.com") for n in range(4)]
    for n in range(200):
        service.submit(users[n % 4], "diagnostics.probe", {})
    assert len(dispatcher.sent) == BOUND
    done: set[str] = set()
    for job_id, _type, _queue in list(dispatcher.sent):  # all start at once, nobody refills yet
        assert lifecycle.claim(job_id, "w@test", None) is not None
        done.add(job_id)
    barrier = threading.Barrier(8)

    def refill() -> None:
        barrier.wait()
        fairshare.refill(lifecycle.machine, "default")

    threads = [threading.Thread(target=refill) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = [s[0] for s in dispatcher.sent]
    assert len(sent) == len(set(sent))
    # The buffer refilled to its bound (which grows with the jobs running), not once per refill.
    assert len(sent) - len(done) == fairshare.bound(running=len(done))
    assert len(held_ids(sessions)) == 200 - len(sent)


def test_turn_of_says_who_goes_first(fair):
    service, _lifecycle, _dispatcher, accounts, sessions = fair
    alice, bob = accounts.ensure_user("alice@example.com"), accounts.ensure_user("bob@example.com")
    backlog_first = service.submit(alice, "diagnostics.probe", {})[0]["id"]
    for _ in range(BOUND + 2):
        service.submit(alice, "diagnostics.probe", {})
    bob_first = service.submit(bob, "diagnostics.probe", {})[0]["id"]
    bob_second = service.submit(bob, "diagnostics.probe", {})[0]["id"]
    turn = fairshare.turn_of(sessions, bob_second)
    assert turn is not None and turn.users_waiting == 2 and turn.own_ahead == 1
    assert turn.users_ahead == 0  # alice has BOUND jobs in flight: bob goes first
    assert "fair-share turn" in turn.describe()
    assert fairshare.turn_of(sessions, bob_first).own_ahead == 0
    # "Why is it waiting?" says the same for the held job, and the plain count for one in the broker.
    with sessions() as session:
        held = waiting_reason(session, session.get(Job, bob_second))
        sent = waiting_reason(session, session.get(Job, backlog_first))
    assert held["code"] == "fair_share" and "1 older job(s) of the same owner" in held["message"]
    assert sent["code"] == "queued"


def test_fair_share_off_sends_everything_at_once(fair, monkeypatch):
    from shared.settings import get_settings

    monkeypatch.setenv("QUESTBOARD_FAIR_SHARE", "0")
    get_settings.cache_clear()
    try:
        service, _lifecycle, dispatcher, accounts, sessions = fair
        alice = accounts.ensure_user("alice@example.com")
        for _ in range(BOUND + 5):
            service.submit(alice, "diagnostics.probe", {})
        assert len(dispatcher.sent) == BOUND + 5 and not held_ids(sessions)
    finally:
        monkeypatch.delenv("QUESTBOARD_FAIR_SHARE")
        get_settings.cache_clear()


def test_the_lost_sweep_leaves_held_jobs_alone(fair, redis_url):
    """A held job has no message by design: the sweep for lost messages must not send it."""
    import redis
    from sqlalchemy import update

    from workers.unacked import sweep_lost

    service, _lifecycle, _dispatcher, accounts, sessions = fair
    alice = accounts.ensure_user("alice@example.com")
    ids = [service.submit(alice, "diagnostics.probe", {})[0]["id"] for _ in range(BOUND + 5)]
    held = held_ids(sessions)
    assert len(held) == 5
    with sessions() as session:  # long unchanged, and none of them in this (empty) Redis
        session.execute(update(Job).values(updated_at=utcnow() - timedelta(minutes=5)))
        session.commit()
    resent: list[str] = []
    sweep_lost(
        redis.Redis.from_url(redis_url, decode_responses=True), sessions, set(), lambda j: resent.append(j.id)
    )
    assert sorted(resent) == sorted(set(ids) - held)


def _rows_read(node: dict) -> int:
    """Rows an EXPLAIN (ANALYZE) plan node and its children produced or filtered away."""
    own = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
    return own + sum(_rows_read(child) for child in node.get("Plans", []))


@pytest.mark.postgres
def test_the_state_read_touches_only_its_rows_on_a_table_without_statistics(postgres_url):
    """The read of every send and refill (in flight, running, any held) on a new PostgreSQL table with a
    2,000-job backlog: the planner has no statistics yet, and used to read the counts through an index on
    the queue alone, filtering every queued row (2,000 rows for 13; migration 0015)."""
    engine = get_engine(postgres_url)
    _backlog(postgres_url, 2_000, held_from=12)
    stmt = fairshare.STATE.params(**fairshare.state_params("default"))
    sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        [[plan]] = conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")).one()
        assert tuple(conn.execute(stmt).one()) == (12, 0, True)
    assert _rows_read(plan["Plan"]) < 50, plan


def _backlog(url: str, count: int, held_from: int | None = None) -> None:
    """``count`` queued jobs of one owner in ``default``; those from ``held_from`` on held."""
    owner = Accounts(url).ensure_user("backlog@example.com").id
    now = utcnow()
    base = {"user_id": owner, "type": "diagnostics.probe", "queue": "default", "params": {}, "message": ""}
    rows = [
        {
            **base,
            "id": new_id(),
            "status": "queued",
            "held": held_from is not None and n >= held_from,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    with get_engine(url).begin() as conn:
        conn.execute(insert(Job.__table__), rows)


def _sqlite_steps(conn, stmt) -> int:
    """SQLite virtual-machine steps (in thousands) one execution of ``stmt`` takes."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    raw = conn.connection.driver_connection
    raw.set_progress_handler(tick, 1000)
    try:
        conn.execute(stmt).one()
    finally:
        raw.set_progress_handler(None, 0)
    return steps[0]


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_state_read_stops_at_the_bound_however_many_jobs_were_sent(request, database):
    """A backlog already sent (before fair share was on, or by a broker-loss resend) made every submit,
    send and refill count all of it: 31 ms a read with 100,000 jobs in flight. The count stops at the
    queue's bound, which is all the gate and the refill need: the read costs the same for 200 jobs as for
    20,000, and still says the queue is full."""
    url = request.getfixturevalue(f"{database}_url")
    engine = get_engine(url)
    stmt = fairshare.STATE.params(**fairshare.state_params("default"))
    costs = []
    for size in (200, 20_000):
        with engine.begin() as conn:
            conn.execute(Job.__table__.delete())
        _backlog(url, size)
        with engine.connect() as conn:
            in_flight, running, any_held = conn.execute(stmt).one()
            assert (in_flight, running, any_held) == (fairshare.bound(0), 0, False)
            assert fairshare.holds(in_flight, running, any_held)
            if database == "sqlite":
                costs.append(_sqlite_steps(conn, stmt))
            else:
                sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
                [[plan]] = conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")).one()
                costs.append(_rows_read(plan["Plan"]))
    small, large = costs
    assert large <= 2 * max(small, 1), costs


def test_the_bound_in_the_state_read_is_the_one_the_gate_uses(sqlite_url, monkeypatch):
    """The count's stop is ``bound``: two per running job past the minimum, or the configured number."""
    _backlog(sqlite_url, 200)
    engine = get_engine(sqlite_url)
    with engine.begin() as conn:  # 30 running jobs: a bound of 60
        ids = conn.execute(select(Job.id).limit(30)).scalars().all()
        conn.execute(Job.__table__.update().where(Job.id.in_(ids)).values(status="running"))
    with engine.connect() as conn:
        assert conn.execute(fairshare.STATE, fairshare.state_params("default")).one()[:2] == (60, 30)
        assert fairshare.bound(30) == 60
        monkeypatch.setenv("QUESTBOARD_FAIR_SHARE_IN_FLIGHT", "25")
        from shared.settings import get_settings

        get_settings.cache_clear()
        try:
            assert conn.execute(fairshare.STATE, fairshare.state_params("default")).one()[:2] == (25, 30)
            assert fairshare.bound(30) == 25
        finally:
            monkeypatch.delenv("QUESTBOARD_FAIR_SHARE_IN_FLIGHT")
            get_settings.cache_clear()
