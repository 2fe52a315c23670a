"""The web app's submitter of system-owned jobs (webhook processing, login mails)."""

from __future__ import annotations

from flask import Flask, current_app

from shared.system import SystemJobs
from web.services import services


def system_jobs(app: Flask | None = None) -> SystemJobs:
    """Built once per app from the app's own job service parts."""
    app = app or current_app
    jobs = app.extensions.get("questboard_system")
    if jobs is None:
        with app.app_context():
            svc = services()
            jobs = SystemJobs(
                svc.settings.resolved_database_url, svc.registry, svc.jobs.publisher, svc.jobs.dispatcher
            )
        app.extensions["questboard_system"] = jobs
    return jobs
