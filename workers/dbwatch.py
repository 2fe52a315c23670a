"""A worker that cannot reach the database stops taking messages until it can again.

A worker whose host is cut from the database (Redis still reachable) can claim nothing: each claim fails
after the connect timeout and gives its message back (``workers.runtime``). Left consuming, the same worker
takes the given-back message again at once, and again, so a job another worker could run waits for
whichever worker wins the race each time. So the maintenance loop probes the database (``SELECT 1``) once
second (in a thread of its own, as a pass may itself be blocked on the database) and, while the probe
fails or has not answered within ``DB_PROBE_TIMEOUT_S``, consumes no queue and skips the loop's database
steps; it consumes again (honouring paused queues) once a probe answers. Messages the worker already
holds are given back as their claims fail, and go to a worker that reaches the database.

On a thread pool the job threads live in the watch's own process: there a claim made while the watch
finds the database unreachable (``unreachable_here``) gives its message back at once, instead of waiting
for a connect timeout first (3 s a claim, and the held messages' claims come one after another).

Each probe runs in a thread of its own too: a link that silently stops moving bytes leaves it blocked
(until ``tcp_user_timeout`` ends it), and the watch must not block with it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from shared import defaults
from shared.db import probe_connect_args

log = logging.getLogger("questboard.maintenance")


PROBE_EVERY_S = 1.0
# The process whose watch last found the database unreachable (None: it answered). A pid, so that a pool
# process forked meanwhile does not inherit the verdict: it has no watch of its own to clear it.
_unreachable_in: int | None = None


def unreachable_here() -> bool:
    """Whether this process's database watch found the database unreachable at its last probe."""
    return _unreachable_in == os.getpid()


class DatabaseWatch:
    """``up``: whether the database answered the last probe; ``on_probe(up, changed)`` after each."""

    def __init__(
        self,
        url: str,
        on_probe: Callable[[bool, bool], None] | None = None,
        timeout_s: float = defaults.DB_PROBE_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.on_probe = on_probe
        # Its own engine without a pool: a busy pool (every connection out) must not read as an outage.
        self.engine = create_engine(url, poolclass=NullPool, connect_args=probe_connect_args(url))
        self.timeout_s = timeout_s
        self.down_since: float | None = None
        self._probe: threading.Thread | None = None
        self._answered = threading.Event()
        self._ok = True

    @property
    def up(self) -> bool:
        return self.down_since is None

    def start(self, stop: threading.Event) -> None:
        """Probe every PROBE_EVERY_S in a thread until ``stop`` is set."""

        def loop() -> None:
            while not stop.is_set():
                was_up = self.up
                now_up = self.reachable()
                if self.on_probe is not None:
                    try:
                        self.on_probe(now_up, now_up != was_up)
                    except Exception:
                        log.exception("acting on the database's reachability failed")
                stop.wait(PROBE_EVERY_S)

        threading.Thread(target=loop, name="questboard-db-watch", daemon=True).start()

    def reachable(self) -> bool:
        """Probe now: whether the database answered within ``timeout_s``."""
        if self._probe is None or not self._probe.is_alive():  # no probe still blocked: start one
            self._answered = threading.Event()
            self._probe = threading.Thread(target=self._run, args=(self._answered,), daemon=True)
            self._probe.name = "questboard-db-probe"
            self._probe.start()
        return self._record(self._answered.wait(self.timeout_s) and self._ok)

    def _run(self, answered: threading.Event) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            self._ok = True
        except Exception:  # any failure to answer counts as unreachable
            self._ok = False
        answered.set()

    def _record(self, ok: bool) -> bool:
        global _unreachable_in
        _unreachable_in = None if ok else os.getpid()
        if not ok and self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("database unreachable: this worker stops taking messages until it answers")
        elif ok and self.down_since is not None:
            log.info(
                "database reachable again: this worker takes messages again",
                extra={"down_s": round(time.monotonic() - self.down_since, 2)},
            )
            self.down_since = None
        return ok
