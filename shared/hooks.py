"""Callbacks around every job, in the spirit of Dramatiq's middleware.

- ``before_enqueue(job: dict)``: after the job row is committed, before its message is sent.
- ``around_perform(job_id, job_type, attempt)``: a context manager wrapping the job body.

Register with ``hooks.before_enqueue.append(fn)`` / ``hooks.around_perform.append(factory)``. A failing
hook is logged and never fails the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

log = logging.getLogger("questboard.hooks")

before_enqueue: list[Callable[[dict[str, Any]], None]] = []
around_perform: list[Callable[[str, str, int], AbstractContextManager[Any]]] = []


def run_before_enqueue(job: dict[str, Any]) -> None:
    for hook in before_enqueue:
        try:
            hook(job)
        except Exception:  # a hook must not stop the job; the error is logged with its trace
            log.exception("before_enqueue hook failed", extra={"job_id": job.get("id")})


@contextmanager
def performing(job_id: str, job_type: str, attempt: int) -> Iterator[None]:
    with ExitStack() as stack:
        for factory in around_perform:
            try:
                stack.enter_context(factory(job_id, job_type, attempt))
            except Exception:  # see run_before_enqueue
                log.exception("around_perform hook failed", extra={"job_id": job_id})
        yield
