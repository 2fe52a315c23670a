"""``REDIS_URL`` may name a plain Redis or a Sentinel-managed service; one place turns it into clients.

Sentinel syntax (kombu's, with the service name in the query)::

    sentinel://[:password@]host:port[;sentinel://host:port...]/db?master_name=name

Each ``sentinel://`` part names one Sentinel; the password (the master's, on any part), the database
number and ``master_name`` (required) may be written on any part, usually the last. Every Redis client
in Questboard — Celery's broker, RedBeat, the Socket.IO message queue and publisher, the rate limits,
the maintenance and readiness clients — asks the Sentinels for the current master, so a failover moves
all of them to the promoted replica. Nothing here imports Flask or Celery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import redis
from redis.sentinel import Sentinel


@dataclass(frozen=True)
class SentinelService:
    """The parts of a ``sentinel://`` REDIS_URL."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    password: str | None = None


def is_sentinel(url: str) -> bool:
    """True when ``url`` names a Sentinel service."""
    return url.strip().lower().startswith("sentinel://")


def parse_sentinel(url: str) -> SentinelService:
    """The Sentinels, service name, db and password of a ``sentinel://`` URL; ValueError if malformed."""
    sentinels: list[tuple[str, int]] = []
    master_name, db, password = None, 0, None
    for part in filter(None, (p.strip() for p in url.split(";"))):
        parts = urlsplit(part)
        if parts.scheme.lower() != "sentinel" or not parts.hostname:
            raise ValueError(f"not a sentinel://host:port part: {part.split('@')[-1]!r}")
        sentinels.append((parts.hostname, parts.port or 26379))
        password = parts.password or password
        if parts.path.strip("/"):
            db = int(parts.path.strip("/"))
        master_name = (parse_qs(parts.query).get("master_name") or [master_name])[0]
    if not sentinels:
        raise ValueError("a sentinel:// REDIS_URL names no Sentinel")
    if not master_name:
        raise ValueError("a sentinel:// REDIS_URL needs ?master_name=<service>")
    return SentinelService(tuple(sentinels), master_name, db, password)


def client(url: str, **kwargs: Any) -> redis.Redis:
    """A ``redis.Redis`` for ``url`` (``kwargs`` as for ``redis.Redis.from_url``); Sentinel-aware."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **kwargs)
    service = parse_sentinel(url)
    timeouts = {k: kwargs[k] for k in ("socket_timeout", "socket_connect_timeout") if k in kwargs}
    sentinel = Sentinel(list(service.sentinels), sentinel_kwargs=timeouts, **timeouts)
    return sentinel.master_for(service.master_name, db=service.db, password=service.password, **kwargs)


def kombu_broker(url: str) -> tuple[str, dict[str, Any]]:
    """(broker_url, extra broker_transport_options) for Celery's broker."""
    if not is_sentinel(url):
        return url, {}
    service = parse_sentinel(url)
    auth = f":{quote(service.password, safe='')}@" if service.password else ""
    broker = ";".join(f"sentinel://{auth}{host}:{port}/{service.db}" for host, port in service.sentinels)
    return broker, {"master_name": service.master_name}


def redbeat(url: str) -> tuple[str, dict[str, Any]]:
    """(redbeat_redis_url, extra redbeat_redis_options) for RedBeat."""
    if not is_sentinel(url):
        return url, {}
    service = parse_sentinel(url)
    options: dict[str, Any] = {"sentinels": list(service.sentinels), "service_name": service.master_name}
    options["db"] = service.db
    if service.password:
        options["password"] = service.password
    return "redis-sentinel://", options


def socketio_url(url: str) -> str:
    """The URL python-socketio's RedisManager takes (``redis+sentinel://…/db/service``)."""
    if not is_sentinel(url):
        return url
    service = parse_sentinel(url)
    auth = f":{quote(service.password, safe='')}@" if service.password else ""
    hosts = ",".join(f"{host}:{port}" for host, port in service.sentinels)
    return f"redis+sentinel://{auth}{hosts}/{service.db}/{service.master_name}"


def limits_storage(url: str, **options: Any) -> Any:
    """A ``limits`` storage for ``url`` (``options`` go to the Redis client)."""
    from limits.storage import RedisSentinelStorage, RedisStorage

    key_prefix = options.pop("key_prefix")
    if not is_sentinel(url):
        return RedisStorage(url, key_prefix=key_prefix, **options)
    service = parse_sentinel(url)
    hosts = ",".join(f"{host}:{port}" for host, port in service.sentinels)
    # The master's password; the Sentinels themselves are asked without one.
    auth = {"password": service.password, "sentinel_kwargs": {"password": None}} if service.password else {}
    return RedisSentinelStorage(
        f"redis+sentinel://{hosts}/{service.master_name}",
        key_prefix=key_prefix,
        use_replicas=False,
        db=service.db,
        **auth,
        **options,
    )


def describe(url: str) -> str:
    """``url`` without its password, for logs and the console."""
    if is_sentinel(url):
        service = parse_sentinel(url)
        hosts = ";".join(f"{host}:{port}" for host, port in service.sentinels)
        return f"sentinel {hosts} master_name={service.master_name} db={service.db}"
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
