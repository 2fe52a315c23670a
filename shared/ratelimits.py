"""Per-type rate limits ("at most N starts per period"), shared by every worker through Redis.

The algorithm is the ``limits`` library's moving window, so no window of the period ever holds more than
N starts (a fixed window would allow 2N across a boundary).
"""

from __future__ import annotations

import time

from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

KEY_PREFIX = "questboard-rate"


def parse_limit(text: str) -> RateLimitItem:
    """``"10 per 5 seconds"``, ``"60/minute"``: raises ValueError for anything else."""
    return parse(text)


class RateLimiter:
    def __init__(self, redis_url: str) -> None:
        self._limiter = MovingWindowRateLimiter(RedisStorage(redis_url, key_prefix=KEY_PREFIX))

    def try_start(self, job_type: str, limit: str) -> float | None:
        """Take a start for ``job_type``: None if allowed now, else seconds until the window allows one."""
        item = parse_limit(limit)
        if self._limiter.hit(item, job_type):
            return None
        stats = self._limiter.get_window_stats(item, job_type)
        return max(0.0, stats.reset_time - time.time())
