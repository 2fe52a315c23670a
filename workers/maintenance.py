"""Work every worker's main process does beside running jobs (the Solid Queue "supervisor" part).

Each pass: heartbeat; release due scheduled/retrying jobs; resend jobs whose dispatch failed; re-send every
queued job when Redis lost its data; recover jobs of dead pool processes and dead workers; stop jobs whose
cancel did not end them cooperatively; wake blocked jobs; send held jobs in turns (fair share); follow
queue pauses. Every worker runs it; each step is a conditional UPDATE, so two workers doing the same pass
cannot both win a job.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from celery.signals import (
    celeryd_after_setup,
    task_received,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)
from sqlalchemy import or_, select

from shared import defaults, fairshare, redisurl
from shared.db import forget_engines, get_sessionmaker
from shared.errors import JobCanceled
from shared.jobtypes import public_queue
from shared.models import Job, utcnow
from shared.processes import pid_alive
from shared.queues import QueueControl
from shared.rollups import Rollups
from shared.settings import get_settings
from shared.states import Status
from workers import poolwatch, revokes, threadpool, timeouts, workflow_steps
from workers.dbwatch import DatabaseWatch
from workers.reserved import RESERVED_PREFIX, active_job_ids, reserved_key, reserved_noter
from workers.unacked import backlog, restore_unnoted, sweep_lost

log = logging.getLogger("questboard.maintenance")

BROKER_EPOCH_KEY = "questboard:broker-epoch"
RESEND_CONSUMING_S = 10.0  # Maintenance.consume

_state: dict[str, Any] = {"queues": [], "paused_at_start": set()}


def heartbeat_key(hostname: str) -> str:
    return defaults.WORKER_KEY_PREFIX + hostname


class Maintenance:
    """The passes, for one worker (``hostname``)."""

    def __init__(self, app: Any, hostname: str, queues: list[str], concurrency: int) -> None:
        from workers.runtime import lifecycle

        self.app = app
        self.hostname = hostname
        self.queues = queues
        self.concurrency = concurrency
        self.lifecycle = lifecycle()
        settings = get_settings()
        self.sessions = get_sessionmaker(settings.resolved_database_url)
        self.redis = redisurl.client(settings.redis_url, socket_timeout=5, decode_responses=True)
        self.queue_control = QueueControl(settings.resolved_database_url)
        self.rollups = Rollups(settings.resolved_database_url)  # the console's 24 h charts
        self.rollup_interval_s = settings.rollup_interval_s
        self._consume_lock = threading.Lock()
        self.database = DatabaseWatch(settings.resolved_database_url, self._database_probed)
        self._consuming_sent_at = time.monotonic()
        self.consuming = set(queues) - set(_state["paused_at_start"])
        self._next: dict[str, float] = {}
        self._noted_by_live: set[str] = set()
        self._dead_seen = False

    def due(self, name: str, every_s: float) -> bool:
        now = time.monotonic()
        if now < self._next.get(name, 0.0):
            return False
        self._next[name] = now + every_s
        return True

    def run_pass(self) -> None:
        steps = [
            ("heartbeat", defaults.WORKER_HEARTBEAT_INTERVAL_S, self.heartbeat),  # the only one while down
            ("revokes", defaults.MAINTENANCE_INTERVAL_S, lambda: revokes.apply_pending(self.lifecycle)),
            ("release", defaults.MAINTENANCE_INTERVAL_S, self.lifecycle.release_due),
            ("cancel", defaults.MAINTENANCE_INTERVAL_S, self.enforce_cancels),
            ("time-limits", defaults.MAINTENANCE_INTERVAL_S, self.enforce_time_limits),
            ("local", 1.0, self.recover_local),
            ("remote", 2.0, self.recover_remote),
            ("lost", defaults.LOST_SWEEP_INTERVAL_S, self.sweep_lost),
            ("reserved", 5.0, self.prune_reserved),
            ("epoch", 2.0, self.check_broker_epoch),
            ("pending", defaults.MAINTENANCE_INTERVAL_S, self.send_pending),
            ("wake", 2.0, self.lifecycle.wake_all),
            # Fair share: held jobs of every queue, in turns (covers a refill nobody triggered).
            ("fair-share", defaults.MAINTENANCE_INTERVAL_S, self.refill_fair_share),
            ("pause", 1.0, self.follow_pauses),
            ("rollups", self.rollup_interval_s, self.rollups.refresh),
            ("workflows", defaults.WORKFLOW_SWEEP_INTERVAL_S, workflow_steps.sweep),  # never hangs
        ]
        for name, every_s, step in steps:
            if not self.database.up and name != "heartbeat":
                break  # cut from the database (workers.dbwatch): the rest would only wait for timeouts
            if self.due(name, every_s):
                try:
                    step()
                except Exception:  # one failing step must not stop the others; it is logged
                    log.exception("maintenance step failed", extra={"step": name})

    def heartbeat(self) -> None:
        info = {
            "name": self.hostname,
            # Public names: a prefork worker of "default.process" serves the "default" queue.
            "queues": sorted({public_queue(q) for q in self.consuming_now()}),
            "configured_queues": sorted({public_queue(q) for q in self.queues}),
            "pool": "threads" if threadpool.is_threads() else "prefork",
            "concurrency": self.concurrency,
            "pid": os.getpid(),
            "last_heartbeat": time.time(),
        }
        pipe = self.redis.pipeline()
        pipe.set(heartbeat_key(self.hostname), json.dumps(info), ex=int(defaults.WORKER_HEARTBEAT_TTL_S))
        pipe.set(defaults.WORKER_LAST_SEEN_KEY, str(info["last_heartbeat"]))
        pipe.execute()

    def _running(self, *conditions: Any) -> list[Job]:
        with self.sessions() as session:
            return list(session.scalars(select(Job).where(Job.status == Status.RUNNING.value, *conditions)))

    def enforce_cancels(self) -> None:
        deadline = utcnow() - timedelta(seconds=defaults.CANCEL_GRACE_S)
        for job in self._running(
            Job.worker == self.hostname, Job.cancel_requested.is_(True), Job.cancel_requested_at <= deadline
        ):
            if threadpool.runs_here(job):
                self._stop_thread(job, JobCanceled, lambda j: self.lifecycle.mark_canceled(j.id, j.attempts))
                continue
            canceled = self.lifecycle.mark_canceled(job.id, job.attempts) is not None
            if canceled and job.worker_pid and not threadpool.is_threads():
                # The body ignored the cancel: end its process; the pool starts a fresh one. (On a thread
                # pool the pid is an earlier process of this worker, now gone: it may name another process.)
                log.warning(
                    "killing pool process of a canceled job", extra={"job_id": job.id, "pid": job.worker_pid}
                )
                try:
                    os.kill(job.worker_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _stop_thread(self, job: Job, exc_type: type[BaseException], record: Any) -> None:
        """A thread-pool job that must stop: interrupt its thread; record and recycle if it does not."""
        if not threadpool.running(job.id):  # its thread is done: only the row is left to close
            record(job)
        elif threadpool.stop(job.id, exc_type):
            record(job)
            threadpool.recycle(self.lifecycle, self.sessions, self.redis, self.hostname, job.id)

    def enforce_time_limits(self) -> None:
        jobs = self._running(Job.worker == self.hostname, Job.worker_pid.is_not(None))
        if not threadpool.is_threads():
            timeouts.enforce(self.lifecycle, jobs)
            return
        from celery.exceptions import SoftTimeLimitExceeded

        for job in jobs:  # no Celery limits on threads: the soft limit here, then recycle
            if threadpool.runs_here(job) and timeouts.past_limit(job):
                record = lambda j: timeouts.record_time_limit(self.lifecycle, j)  # noqa: E731
                self._stop_thread(job, SoftTimeLimitExceeded, record)

    def recover_local(self) -> None:
        """Running jobs of this worker whose process is gone — or alive again under the same pid: an
        earlier process of the same name, a container's restarted PID 1 (a thread pool's jobs carry the
        main process's pid) or a pid namespace handing the new pool processes the same numbers. The pid
        alone would keep such a job ``running`` until its time limit, so a job on a live pid that started
        over ``ORPHAN_GRACE_S`` ago and that no pool slot of this worker runs (Celery's accepted tasks:
        a claim is made only after acceptance, and the grace covers the moment before this main process
        hears of it) is recovered too."""
        active: set[str] | None = None  # read once per pass, when a job on a live pid needs it
        settled = utcnow() - timedelta(seconds=defaults.ORPHAN_GRACE_S)
        for job in self._running(Job.worker == self.hostname, Job.worker_pid.is_not(None)):
            if pid_alive(job.worker_pid):  # type: ignore[arg-type]
                if job.started_at is None or job.started_at > settled:
                    continue
                if active is None:
                    active = active_job_ids()
                    if active is None:  # changed while copied: the next pass decides
                        return
                if job.id in active:
                    continue
            if timeouts.past_limit(job):  # Celery's hard time limit ended the process
                timeouts.record_time_limit(self.lifecycle, job)
            else:
                reason, revoked = "worker process lost", revokes.is_revoked(job.id)
                self.lifecycle.recover(job.id, job.worker or "", job.worker_pid, reason, revoked)

    def _broker_settled(self) -> bool:
        """False right after Redis lost its data: heartbeats are missing then, not workers."""
        epoch = self.redis.get(BROKER_EPOCH_KEY)
        try:
            since = float((epoch or "").split(":")[-1])
        except ValueError:
            return False
        return (
            time.time() - since > defaults.WORKER_HEARTBEAT_TTL_S + 2 * defaults.WORKER_HEARTBEAT_INTERVAL_S
        )

    def recover_remote(self) -> None:
        """Jobs of workers whose heartbeat expired: running ones recovered, reserved ones sent again."""
        if not self._broker_settled():
            return
        dead_keys, noted_by_live = [], set()
        for key in self.redis.scan_iter(match=RESERVED_PREFIX + "*", count=100):
            worker = key.removeprefix(RESERVED_PREFIX)
            if worker == self.hostname or self.redis.exists(heartbeat_key(worker)):
                noted_by_live |= self.redis.smembers(key)
            else:
                dead_keys.append(key)
        # Taken by a worker that is gone: from kombu's unacked hash, without waiting for the visibility
        # timeout (workers.unacked); what it noted and is not there any more is sent anew.
        restored = restore_unnoted(self.app, self.redis, self.sessions, noted_by_live)
        for key in dead_keys:
            self._resend_reserved(key, restored)
        self._noted_by_live, self._dead_seen = noted_by_live, self._dead_seen or bool(dead_keys)
        stale = utcnow() - timedelta(seconds=defaults.ORPHAN_GRACE_S)
        alive: dict[str, bool] = {}
        for job in self._running(Job.updated_at <= stale):
            worker = job.worker or ""
            if worker not in alive:
                alive[worker] = bool(worker) and bool(self.redis.exists(heartbeat_key(worker)))
            if not alive[worker]:
                reason = f"worker {worker or '?'} lost"
                self.lifecycle.recover(job.id, worker, job.worker_pid, reason, revokes.is_revoked(job.id))

    def sweep_lost(self) -> None:
        """Queued jobs whose message a dead worker took and never recorded anywhere (workers.unacked)."""
        if self._broker_settled() and (
            self._dead_seen or backlog(self.redis) <= defaults.LOST_SWEEP_MAX_BACKLOG
        ):
            self._dead_seen = False
            sweep_lost(self.redis, self.sessions, self._noted_by_live, self.lifecycle.send)

    def _resend_reserved(self, key: str, restored: set[str]) -> None:
        ids = list(self.redis.smembers(key) - restored)
        if ids:
            with self.sessions() as session:
                jobs = list(
                    session.scalars(select(Job).where(Job.id.in_(ids), Job.status == Status.QUEUED.value))
                )
            for job in jobs:
                self.lifecycle.send(job)
            log.warning("re-sent jobs reserved by a lost worker", extra={"count": len(jobs), "key": key})
        self.redis.delete(key)

    def prune_reserved(self) -> None:
        """Forget reserved ids of ours that have started or finished (keeps the set small)."""
        key = reserved_key(self.hostname)
        ids = list(self.redis.smembers(key))
        if not ids:
            return
        with self.sessions() as session:
            waiting = set(
                session.scalars(select(Job.id).where(Job.id.in_(ids), Job.status == Status.QUEUED.value))
            )
        done = [i for i in ids if i not in waiting]
        if done:
            self.redis.srem(key, *done)

    def check_broker_epoch(self) -> None:
        """A missing epoch key means Redis lost its data (or is new): send every queued job again."""
        if not self.redis.set(BROKER_EPOCH_KEY, f"{uuid.uuid4().hex}:{time.time()}", nx=True):
            return
        with self.sessions() as session:
            jobs = list(
                session.scalars(  # held jobs (fair share) never had a message: they wait for their turn
                    select(Job).where(Job.status == Status.QUEUED.value, Job.held.is_(False))
                )
            )
        for job in jobs:
            self.lifecycle.send(job)
        if jobs:
            log.warning("broker had no epoch: re-sent queued jobs", extra={"count": len(jobs)})

    def send_pending(self) -> None:
        with self.sessions() as session:
            jobs = list(
                session.scalars(
                    select(Job)
                    .where(
                        Job.needs_dispatch.is_(True),
                        Job.status == Status.QUEUED.value,
                        or_(Job.scheduled_at.is_(None), Job.scheduled_at <= utcnow()),
                    )
                    .limit(defaults.SEND_PENDING_BATCH)
                )
            )
        for job in jobs:
            if self.lifecycle.send(job):  # cleared only once it is on the broker
                self.lifecycle.machine.set_unsent(job.id, False)

    def refill_fair_share(self) -> None:
        fairshare.refill_all(self.lifecycle.machine)

    def follow_pauses(self) -> None:
        paused = self.queue_control.paused()
        # Broker names: "default.process" follows a pause of "default".
        self.consume({queue for queue in self.queues if public_queue(queue) not in paused})

    def _database_probed(self, up: bool, changed: bool) -> None:
        if not up:
            self.consume(set())  # every probe while down: a cancel that did not get through is re-sent
        elif changed:
            self._next.pop("pause", None)  # the next pass reads the pauses and consumes again

    def consuming_now(self) -> set[str]:
        with self._consume_lock:
            return set(self.consuming)

    def consume(self, wanted: set[str]) -> None:
        """Consume exactly ``wanted`` of this worker's queues: none while the database is unreachable.

        The remote-control messages that do it are fire-and-forget (one sent while the worker's broker
        connection is being re-made is lost), so every ``RESEND_CONSUMING_S`` the whole state is sent
        again; both commands leave a queue already in that state as it is."""
        with self._consume_lock:
            now = time.monotonic()
            resend = now - self._consuming_sent_at >= RESEND_CONSUMING_S
            if resend:
                self._consuming_sent_at = now
            self._consume(wanted if self.database.up else set(), resend)

    def _consume(self, wanted: set[str], resend: bool) -> None:
        control = self.app.control
        for queue in self.queues:
            change = (queue in wanted) != (queue in self.consuming)
            if not (change or resend):
                continue
            if queue in wanted:
                control.add_consumer(queue, destination=[self.hostname], reply=False)
                if change:
                    self.consuming.add(queue)
                    log.info("consuming again", extra={"queue": queue})
            else:
                control.cancel_consumer(queue, destination=[self.hostname], reply=False)
                if change:
                    self.consuming.discard(queue)
                    log.info("stopped consuming", extra={"queue": queue})


def _loop(maintenance: Maintenance, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            maintenance.run_pass()
        except Exception:  # the loop must outlive anything one pass meets
            log.exception("maintenance pass failed")
        stop.wait(defaults.MAINTENANCE_INTERVAL_S)


_stop = threading.Event()


@celeryd_after_setup.connect
def _apply_pauses_before_consuming(sender: str, instance: Any, **_: Any) -> None:
    """Leave paused queues out before the consumer starts, so a restarted worker honours a pause."""
    queues = instance.app.amqp.queues
    configured = sorted(queues.consume_from) if queues.consume_from else sorted(queues)
    _state["queues"] = configured
    try:
        paused = QueueControl(get_settings().resolved_database_url).paused()
    except Exception:  # no database yet: start consuming; the loop applies pauses later
        log.exception("could not read paused queues at start-up")
        paused = set()
    _state["paused_at_start"] = {q for q in configured if public_queue(q) in paused}
    for queue in _state["paused_at_start"]:
        queues.deselect(queue)


@task_received.connect
def _remember_reserved(request: Any = None, **_: Any) -> None:
    """In the worker's main process: note the job as taken by this worker until it starts."""
    if request is not None and request.id:
        reserved_noter().note(request.hostname, request.id)


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    from questboard import app as composition

    forget_engines()
    composition.current.cache_clear()  # a pool process re-forked from the main process builds its own


@worker_ready.connect
def _start(sender: Any = None, **_: Any) -> None:
    consumer = sender
    concurrency = getattr(consumer.pool, "limit", None) or consumer.app.conf.worker_concurrency or 1
    threadpool.set_threads("thread" in type(consumer.pool).__module__)
    maintenance = Maintenance(consumer.app, consumer.hostname, _state["queues"], concurrency)
    _stop.clear()
    maintenance.database.start(_stop)
    threading.Thread(
        target=_loop, args=(maintenance, _stop), name="questboard-maintenance", daemon=True
    ).start()
    poolwatch.start(consumer, _stop)


@worker_shutdown.connect
def _stop_loop(**_: Any) -> None:
    # The heartbeat key is left to expire: jobs still finishing in a warm shutdown stay owned meanwhile.
    _stop.set()
