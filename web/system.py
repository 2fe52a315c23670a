"""The web app's submitter of system-owned jobs (webhook processing, login mails)."""

from __future__ import annotations

from flask import Flask, current_app

from shared.system import SystemJobs


def system_jobs(app: Flask | None = None) -> SystemJobs:
    """The system user's submitter of ``app`` (default: the current one), from its composition root."""
    return (app or current_app).extensions["questboard"].system
