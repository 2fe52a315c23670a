"""Makes the worker's pool notice a dead pool process at once, so it never runs a slot short.

Celery's prefork pool learns that a pool process died from the process's sentinel pipe: when it reads
end-of-file it untracks the pipe and reaps the process. Closing a process's files comes before the
process becomes reapable, so when the pool looks too early (a process with more to tear down, such as
open PostgreSQL connections, widens the gap) it finds the process still alive and then waits for its
5-second maintenance timer. Until then the dead process's job still counts against the prefetch limit,
and the pool runs one job short (a canceled job whose process was killed, a crashed job).

The watch looks at the pool's processes every ``POOL_WATCH_INTERVAL_S``; when one is a zombie (dead,
not yet reaped) it asks the consumer's event loop to run the pool's maintenance, which reaps it, gives
its job's message back and starts a replacement.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from shared import defaults
from shared.processes import pid_alive

log = logging.getLogger("questboard.maintenance")


def _dead_children(consumer: Any) -> list[int]:
    pool = getattr(getattr(consumer, "pool", None), "_pool", None)
    return [p.pid for p in list(getattr(pool, "_pool", None) or []) if p.pid and not pid_alive(p.pid)]


def watch_pool(consumer: Any, stop: threading.Event) -> None:
    """Run in a thread of the worker's main process until ``stop`` is set."""
    from celery.worker import state  # the worker's own flags: set by its SIGTERM/SIGQUIT handlers

    while not stop.wait(defaults.POOL_WATCH_INTERVAL_S):
        if state.should_stop is not None or state.should_terminate is not None:
            continue  # shutting down: no replacement process, no new job taken in the meantime
        try:
            dead = _dead_children(consumer)
            if dead and consumer.hub is not None:
                log.info("pool process ended: asking the pool to replace it", extra={"pids": dead})
                consumer.hub.call_soon(consumer.pool.maintain_pool)  # thread-safe; wakes the loop
        except Exception:  # never let the watch end the worker; logged
            log.exception("pool watch failed")


def start(consumer: Any, stop: threading.Event) -> None:
    threading.Thread(
        target=watch_pool, args=(consumer, stop), name="questboard-poolwatch", daemon=True
    ).start()
