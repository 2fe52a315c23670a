"""Stopping a job on a thread-pool worker, where no pool process of its own can be ended.

On a prefork worker a body that ignores its cancel or its time limit has its pool process ended. On a
thread pool the body runs in a thread of the worker process itself, and Celery's thread pool has no time
limits. So the worker's maintenance loop does it in two steps:

1. ``interrupt``: the body's thread gets ``JobCanceled`` (cancel) or ``SoftTimeLimitExceeded`` (time
   limit) raised at its next Python instruction, and ``workers.runtime`` records the outcome as usual. A
   body that runs Python code (a loop without progress points) stops here.
2. ``recycle``: a body still running ``STOP_GRACE_S`` later is stuck in a call no exception reaches
   (a blocking C call). Its outcome is recorded by the caller; then the worker seals its lifecycle (its
   job threads claim nothing more — a claim's message goes back to the broker — and their later moves
   are not written, since a given-back job may already run elsewhere) and gives back every other job
   it runs (queued again and sent, the attempt not counted: no job lost, and the atomic claim keeps each
   from running twice at once), forgets what it had reserved (so any worker hands those messages back at
   once, ``workers.unacked``) and exits with ``WORKER_RECYCLE_EXIT_CODE``. ``questboard up`` (and
   Docker's restart policy) starts it again.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from typing import Any

from celery.signals import task_postrun, task_prerun
from sqlalchemy import select

from shared import defaults
from shared.models import Job
from shared.states import Status

log = logging.getLogger("questboard.maintenance")

# Seconds a body gets to stop after the exception was raised in its thread, before the worker recycles.
STOP_GRACE_S = 1.5

_state: dict[str, Any] = {"threads": False}
_threads: dict[str, int] = {}  # job id -> ident of the thread running its task
_interrupted: dict[str, float] = {}  # job id -> monotonic time its thread was interrupted
_lock = threading.Lock()


def set_threads(on: bool) -> None:
    """Called once the worker is ready: whether its pool runs jobs in threads of this process."""
    _state["threads"] = on


def is_threads() -> bool:
    return bool(_state["threads"])


def runs_here(job: Job) -> bool:
    """The job runs in a thread of this (thread-pool) worker process."""
    return is_threads() and job.worker_pid == os.getpid()


@task_prerun.connect
def _started(task_id: str | None = None, **_: Any) -> None:
    if task_id and is_threads():
        with _lock:
            _threads[task_id] = threading.get_ident()
            _interrupted.pop(task_id, None)  # a new attempt: an earlier one's interrupt is not its own


@task_postrun.connect
def _ended(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        with _lock:
            _threads.pop(task_id, None)
            _interrupted.pop(task_id, None)


def running(job_id: str) -> bool:
    """The job's task still runs in one of this process's threads."""
    with _lock:
        return job_id in _threads


def stop(job_id: str, exc_type: type[BaseException]) -> bool:
    """Ask the job's thread to stop; True once it had ``STOP_GRACE_S`` to do so and still runs (then the
    caller records the outcome and calls ``recycle``)."""
    with _lock:
        ident = _threads.get(job_id)
        if ident is None:
            return False
        since = _interrupted.get(job_id)
        if since is not None:
            return time.monotonic() - since >= STOP_GRACE_S
        _interrupted[job_id] = time.monotonic()
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc_type))
    # Logged outside the lock: the exception may land in the job thread while it holds the logging lock.
    log.info("interrupted a job's thread", extra={"job_id": job_id, "error": exc_type.__name__})
    return False


def recycle(lifecycle: Any, sessions: Any, redis: Any, hostname: str, stuck: str) -> None:
    """Give back this process's other running jobs, forget its reservations, and exit (see the module)."""
    from workers.reserved import reserved_key

    pid = os.getpid()
    try:
        lifecycle.seal()  # no job thread claims or writes from now on: the jobs are about to be given back
        with sessions() as session:
            others = list(
                session.scalars(
                    select(Job).where(
                        Job.status == Status.RUNNING.value,
                        Job.worker == hostname,
                        Job.worker_pid == pid,
                        Job.id != stuck,
                    )
                )
            )
        for job in others:
            lifecycle.requeue(job.id, job.attempts, "worker recycled to end a stuck job")
        redis.delete(reserved_key(hostname))
        log.warning(
            "recycling the worker to end a stuck job",
            extra={"job_id": stuck, "pid": pid, "requeued": [j.id for j in others]},
        )
    except Exception:  # the restarted worker recovers them then (a dead pid's jobs: recover_local)
        log.exception("could not give back the jobs of a recycling worker")
    finally:
        logging.shutdown()
        os._exit(defaults.WORKER_RECYCLE_EXIT_CODE)
