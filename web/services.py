"""The services a web process uses: the composition root's (questboard.app), built once per Flask app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

from questboard.app import Questboard
from shared.admin import Operations

if TYPE_CHECKING:
    from workers.recurring import RecurringTasks


def services() -> Questboard:
    """This app's services (``create_app`` builds them with ``questboard.app.build``)."""
    return current_app.extensions["questboard"]


def operations() -> Operations:
    """The operator's services (console, admin API, metrics)."""
    return services().operations


def recurring_tasks() -> RecurringTasks:
    """RedBeat's recurring tasks, read with this app's Celery configuration."""
    return services().recurring
