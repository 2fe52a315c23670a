"""One fix to kombu's Redis transport: a channel whose broker connection is gone fails as a lost
connection (which Celery and kombu handle) instead of with an AttributeError (which stops the worker).

The defect (kombu 5.x's redis transport, reached through Celery's consumer): when Redis goes away while a
worker holds unacknowledged messages *and* waits in BRPOP for more, Celery's
``Consumer.on_connection_error_after_connected`` calls ``connection.collect()`` and then
``connection.close()``. ``collect`` tries to close the default channel, whose close stops at once on the
dead BRPOP reply (a ``ConnectionError``, swallowed), and then detaches the transport from its
``kombu.Connection`` (``transport.client = None``). ``close`` closes that half-closed channel again; it
now gets as far as giving its unacknowledged messages back (``restore_unacked_once``), which builds a new
connection pool from ``self.connection.client`` — ``None`` — and raises
``AttributeError: 'NoneType' object has no attribute 'hostname'``. That is neither a connection nor a
channel error, so ``ignore_errors`` lets it through the consumer's reconnect handler and Celery stops the
worker ("Unrecoverable error"). A late ack of a job that was running at the time meets the same
``AttributeError`` on the closed channel. No setting avoids it: ``broker_connection_retry`` and
``broker_channel_error_retry`` only choose which errors start a reconnect, and the error is raised inside
the reconnect itself.

Making the channel say what really happened — its connection is gone — puts it back on the paths that
already handle that: the close is ignored, the reconnect goes on, a late ack is logged ("Couldn't ack").
The messages it could not give back stay in Redis's unacked hash: those of jobs still queued are given
back by the maintenance loop (workers/unacked.py), those of jobs that ran are skipped by the claim when
the visibility timeout redelivers them; after a restart of Redis without data the broker-epoch check
sends the queued jobs again (workers/maintenance.py).

The fix wraps ``Channel._connparams`` (the one place a channel reads its connection's parameters; the
Sentinel channel inherits it) rather than naming subclasses in ``broker_transport``: a transport class
path would replace the URL scheme in what kombu reports (banner, logs, Flower's broker page, which picks
its client by scheme). ``install`` runs when the Celery app is made (workers/celery_app.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

DETACHED = "the broker connection of this channel is closed"


def _fail_when_detached(connparams: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    @functools.wraps(connparams)
    def guarded(channel: kombu_redis.Channel, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # ``channel.connection`` (the transport) is None once the channel closed; its ``client`` (the
        # kombu.Connection) is None once that connection was collected or closed.
        if channel.connection is None or channel.connection.client is None:
            raise RedisConnectionError(DETACHED)
        return connparams(channel, *args, **kwargs)

    guarded.questboard_guarded = True  # type: ignore[attr-defined]
    return guarded


def install() -> None:
    """Make detached Redis channels fail as lost connections (idempotent)."""
    current = kombu_redis.Channel._connparams
    if not getattr(current, "questboard_guarded", False):
        kombu_redis.Channel._connparams = _fail_when_detached(current)  # type: ignore[method-assign]
