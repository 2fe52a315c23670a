"""The Celery application. Importing it registers no tasks: the worker loads ``workers.tasks``."""

from __future__ import annotations

from celery import Celery

from shared import redisurl
from shared.settings import Settings, get_settings
from workers import broker, inspect_masking, logging_signals  # noqa: F401  (masked inspect replies; JSON logs)


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured from ``celeryconfig`` with the broker of ``settings``."""
    broker.install()  # a worker outlives a Redis restart (workers/broker.py)
    app = Celery("questboard", include=["workers.tasks"])
    app.config_from_object("celeryconfig")
    app.conf.broker_url, broker_extra = redisurl.kombu_broker(settings.redis_url)
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, **broker_extra}
    app.conf.redbeat_redis_url, redbeat_extra = redisurl.redbeat(settings.redis_url)
    app.conf.redbeat_redis_options = {**app.conf.redbeat_redis_options, **redbeat_extra}
    return app


celery_app = make_celery(get_settings())
