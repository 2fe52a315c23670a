"""Per-type rate limits ("at most N starts per period"), shared by every worker through Redis.

The algorithm is the ``limits`` library's moving window, so no window of the period ever holds more than
N starts (a fixed window would allow 2N across a boundary).
"""

from __future__ import annotations

import time
from functools import cache

from limits import RateLimitItem, parse
from limits.strategies import MovingWindowRateLimiter

from shared import redisurl
from shared.errors import Postponed

KEY_PREFIX = "questboard-rate"
# A job told to wait is tried this long after its window frees a start, so it does not race the boundary.
RETRY_MARGIN_S = 0.25


def parse_limit(text: str) -> RateLimitItem:
    """``"10 per 5 seconds"``, ``"60/minute"``: raises ValueError for anything else."""
    return parse(text)


class RateLimiter:
    def __init__(self, redis_url: str) -> None:
        self._limiter = MovingWindowRateLimiter(redisurl.limits_storage(redis_url, key_prefix=KEY_PREFIX))

    def try_start(self, job_type: str, limit: str) -> float | None:
        """Take a start for ``job_type``: None if allowed now, else seconds until the window allows one."""
        item = parse_limit(limit)
        if self._limiter.hit(item, job_type):
            return None
        stats = self._limiter.get_window_stats(item, job_type)
        return max(0.0, stats.reset_time - time.time())


@cache
def limiter(redis_url: str) -> RateLimiter:
    return RateLimiter(redis_url)


def take_or_postpone(resource: str, limit: str, redis_url: str) -> None:
    """Inside a job body: take one use of ``resource`` (e.g. ``"LLM"``) under ``limit``, shared by every
    worker through Redis; when the window is full, raise ``Postponed`` (the job waits ``queued`` and runs
    again when a use is free, without spending an attempt)."""
    wait_s = limiter(redis_url).try_start(f"resource:{resource}", limit)
    if wait_s is not None:
        raise Postponed(f"Waiting for the {resource} rate limit ({limit})", wait_s + RETRY_MARGIN_S)
