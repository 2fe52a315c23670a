"""``celery flower`` with every page behind its basic auth, ``/metrics`` included.

Flower serves its Prometheus ``/metrics`` (task names, worker names, counts, runtimes) without asking who
asks, even when ``--basic-auth`` guards everything else. ``questboard flower`` runs Flower through this
module, which puts that one handler behind the same check before Flower starts. ``/healthcheck`` (it
answers ``OK``, nothing more) stays open for container health checks. Prometheus scrapes Flower with
``basic_auth`` in its scrape config (docs/operations.md).
"""

from __future__ import annotations

import os
import sys


def protect_metrics() -> None:
    """Flower's ``/metrics`` handler asks for the credentials every other Flower page asks for."""
    from flower.views.monitor import Metrics
    from tornado.web import authenticated

    if not getattr(Metrics.get, "questboard_protected", False):
        guarded = authenticated(Metrics.get)
        guarded.questboard_protected = True  # type: ignore[attr-defined]
        Metrics.get = guarded  # type: ignore[method-assign]


def main() -> None:
    """Run ``celery flower``; refuses to start unless FLOWER_BASIC_AUTH (read by Flower) is usable."""
    from celery.__main__ import main as celery_main

    from shared.settings import usable_basic_auth

    if not usable_basic_auth(os.environ.get("FLOWER_BASIC_AUTH")):
        sys.exit("FLOWER_BASIC_AUTH=user:password must be in the environment: Flower never runs open.")
    protect_metrics()
    sys.exit(celery_main())


if __name__ == "__main__":
    main()
