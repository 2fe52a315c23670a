"""Rate limits on signing in: the magic-link form per email and per client IP, bad link opens per IP.

Counted in Redis with the ``limits`` library's moving window, so every web process shares the counts;
the keys have their own prefix (job-type limits use ``questboard-rate``). Over a limit the answer is 429
with ``Retry-After`` and the same page whether or not the email has an account. Emails are hashed in the
keys. If Redis does not answer, sign-in is let through (logged): logging in must not fail with the broker.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

import redis
from flask import current_app, render_template, request
from limits import RateLimitItem, parse
from limits.strategies import MovingWindowRateLimiter

from shared import redisurl
from web.services import services

KEY_PREFIX = "questboard-login-rate"
LOGIN_PER_EMAIL = parse("5 per minute")  # magic links asked for one address
LOGIN_PER_IP = parse("20 per minute")  # magic links asked from one client, any address
BAD_LINKS_PER_IP = parse("20 per minute")  # used, expired or unknown links opened from one client
REDIS_TIMEOUT_S = 1.0

log = logging.getLogger("questboard.web.ratelimit")


def _email_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


class LoginLimits:
    def __init__(self, redis_url: str) -> None:
        storage = redisurl.limits_storage(
            redis_url,
            key_prefix=KEY_PREFIX,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        self._limiter = MovingWindowRateLimiter(storage)

    def _wait_s(self, item: RateLimitItem, *key: str) -> int:
        reset_at = self._limiter.get_window_stats(item, *key).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def form_wait_s(self, ip: str, email: str) -> int | None:
        """Count one request of the login form: None if allowed, else seconds until one is."""
        try:
            for item, key in (
                (LOGIN_PER_IP, ("form-ip", ip)),
                (LOGIN_PER_EMAIL, ("form-email", _email_key(email))),
            ):
                if not self._limiter.hit(item, *key):
                    return self._wait_s(item, *key)
        except redis.RedisError as exc:
            log.warning("login rate limit unavailable, request let through", extra={"error": repr(exc)})
        return None

    def link_wait_s(self, ip: str) -> int | None:
        """None while this client may open a login link, else seconds until it may (nothing counted)."""
        try:
            if not self._limiter.test(BAD_LINKS_PER_IP, "link-ip", ip):
                return self._wait_s(BAD_LINKS_PER_IP, "link-ip", ip)
        except redis.RedisError as exc:
            log.warning("login rate limit unavailable, request let through", extra={"error": repr(exc)})
        return None

    def record_bad_link(self, ip: str) -> None:
        """Count a link that did not log anyone in."""
        try:
            self._limiter.hit(BAD_LINKS_PER_IP, "link-ip", ip)
        except redis.RedisError as exc:
            log.warning("login rate limit unavailable, bad link not counted", extra={"error": repr(exc)})


def login_limits() -> LoginLimits:
    """This app's limiter, built on first use (no Redis connection at start-up)."""
    found = current_app.extensions.get("questboard_login_limits")
    if found is None:
        found = current_app.extensions["questboard_login_limits"] = LoginLimits(services().settings.redis_url)
    return found


def client_ip() -> str:
    return request.remote_addr or "unknown"


def too_many_attempts(wait_s: int) -> Any:
    """The friendly 429 page with ``Retry-After``."""
    return render_template("login_limited.html", wait_s=wait_s), 429, {"Retry-After": str(wait_s)}
