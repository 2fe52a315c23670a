"""A Celery revoke of a job's task (Flower, ``celery control revoke``, ``app.control.revoke``) ends the job.

The task id of a job's message is the job id. Celery only acts on messages and processes: it remembers a
revoked id in every worker's memory, drops a message with that id when it arrives, and with terminate
ends the pool process running it. Left there, the job row would stay ``queued`` (or be requeued as a lost
process and its next message dropped again) for good. So every worker's main process notes:

- each revoke command it receives (``revoke``, ``terminate``): the job is canceled at once when it has not
  started (scheduled, queued, blocked, retrying), whether or not its message is in a worker; a running
  job is asked to stop at its next progress point, as a user's cancel (and its process is ended after the
  cancel grace period if it does not);
- Celery's ``task_revoked`` signal (a revoked message dropped on arrival, an expired one, or a running
  task terminated): a terminated job is canceled at once, with its attempt closed and its slot freed.

The notes are applied by the maintenance loop (off Celery's consumer loop), through
``Lifecycle.revoke``; two workers applying the same revoke cannot both win (conditional transitions).
A job of a lost process whose id was revoked is canceled, not requeued (``is_revoked``).
"""

from __future__ import annotations

import functools
import logging
import queue
from collections.abc import Callable
from typing import Any

from celery.signals import task_revoked
from celery.worker import state as worker_state
from celery.worker.control import Panel

from shared.lifecycle import Lifecycle

log = logging.getLogger("questboard.maintenance")

# (job id, its process was ended, how) noted in Celery's threads, applied by the maintenance loop.
_pending: queue.SimpleQueue[tuple[str, bool, str]] = queue.SimpleQueue()


def is_revoked(job_id: str) -> bool:
    """Whether this worker has the job's task id as revoked (its next message would be dropped)."""
    return job_id in worker_state.revoked


def apply_pending(lifecycle: Lifecycle) -> None:
    """Apply every revoke noted since the last pass (a maintenance step)."""
    while True:
        try:
            job_id, process_ended, how = _pending.get_nowait()
        except queue.Empty:
            return
        try:
            job = lifecycle.revoke(job_id, process_ended, how)
        except Exception:  # the database did not take it: the next pass tries again
            log.exception("applying a revoke failed; kept for the next pass", extra={"job_id": job_id})
            _pending.put((job_id, process_ended, how))
            return
        if job is not None:
            log.info("job revoked through Celery", extra={"job_id": job_id, "status": job.status, "how": how})


def _ids(task_id: Any) -> list[str]:
    if isinstance(task_id, str):
        return [task_id]
    return [str(i) for i in task_id or ()]


@task_revoked.connect
def _on_task_revoked(
    sender: Any = None,
    request: Any = None,
    terminated: bool = False,
    signum: Any = None,
    expired: bool = False,
    **_: Any,
) -> None:
    """In the worker's main process: a revoked task was dropped, expired, or its process ended."""
    job_id = getattr(request, "id", None)
    if job_id:
        how = "revoke, terminated" if terminated else "expired" if expired else "revoke"
        _pending.put((job_id, bool(terminated), how))


def _noting(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def command(state: Any, **kwargs: Any) -> Any:
        try:
            return original(state, **kwargs)  # Celery's own handling first (remember, terminate)
        except NotImplementedError:  # a thread pool ends no process: the job is asked to stop (below)
            return {"ok": "revoked; a thread pool ends no process: the running job is asked to stop"}
        finally:
            for job_id in _ids(kwargs.get("task_id")):
                _pending.put((job_id, False, "revoke"))

    return command


def _watch_revoke_commands() -> None:
    """Note the ids of every ``revoke``/``terminate`` remote control command this worker receives."""
    for name in ("revoke", "terminate"):
        original = Panel.data.get(name)
        if original is not None and not getattr(original, "questboard_noting", False):
            command = _noting(original)
            command.questboard_noting = True  # type: ignore[attr-defined]
            Panel.data[name] = command


_watch_revoke_commands()
