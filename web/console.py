"""The operator console at ``/admin`` (contract §6): session cookie, CSRF-protected forms.

The page is rendered whole on the server; ``/admin/panel`` renders the same panel again, and admin.js swaps
it in on every job update (Socket.IO, admins' room) and every few seconds. Viewers see everything and get
403 on every action. Each action is audit-logged, then redirects back to the console (post/redirect/get).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

import redis
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from shared.errors import ServiceError
from shared.states import Status
from web.admin import apply_recurring_action, can_view
from web.auth import login_required
from web.health import supervised_roles
from web.metrics import alerts_now
from web.services import operations, recurring_tasks, services

F = TypeVar("F", bound=Callable[..., Any])
bp = Blueprint("console", __name__, url_prefix="/admin")

REFRESH_INTERVAL_S = 5
JOB_SECTIONS = (
    ("In progress", (Status.RUNNING, Status.RETRYING)),
    ("Queued", (Status.QUEUED,)),
    ("Scheduled", (Status.SCHEDULED,)),
    ("Blocked", (Status.BLOCKED,)),
)


def console_viewer_required(view: F) -> F:
    """Anonymous: to the login page; logged in but neither admin nor viewer: 403."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not can_view(g.user):
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def console_admin_required(view: F) -> F:
    """Actions: admins only (viewers get 403 too)."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not g.user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


@bp.app_template_filter("ops_ago")
def ago(value: str | None) -> str:
    """An ISO 8601 UTC time as "12 s ago" / "in 3 min"."""
    if not value:
        return "—"
    delta = (datetime.fromisoformat(value.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds()
    text = seconds(abs(delta))
    return f"in {text}" if delta > 1 else f"{text} ago"


@bp.app_template_filter("ops_duration")
def seconds(value: float | None) -> str:
    """A duration as "45 s", "12 min", "3.5 h"."""
    value = float(value or 0)
    if value < 90:
        return f"{value:.0f} s"
    if value < 90 * 60:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def panel_context(failed_type: str | None) -> dict[str, Any]:
    """Everything the panel shows. Redis being down degrades the panel instead of failing it."""
    ops = operations()
    problems: list[str] = []
    workers: list[dict[str, Any]] = []
    queues: list[dict[str, Any]] = []
    recurring: list[dict[str, Any]] = []
    try:
        live = ops.live_workers()
        workers, queues = ops.workers(live), ops.queues(live)
        recurring = recurring_tasks().list()
    except redis.RedisError as exc:
        problems.append(
            f"Redis does not answer ({type(exc).__name__}): queues, workers and recurring tasks are unknown."
        )
    return {
        "problems": problems,
        "alerts": alerts_now(ops, queues),  # without Redis: the failure-rate alerts, from the database
        "stats": ops.stats(),
        "queues": queues,
        "workers": workers,
        "roles": supervised_roles() if not problems else [],
        "job_sections": [(title, ops.jobs_in(statuses)) for title, statuses in JOB_SECTIONS],
        "failed": ops.failed(failed_type),
        "failed_counts": ops.failed_counts(),
        "failed_type": failed_type,
        "recurring": recurring,
        "audit": ops.audit_log(),
        "activity": ops.activity(),
        "can_act": bool(g.user.is_admin),
    }


def _failed_type() -> str | None:
    return (request.args.get("type") or request.form.get("return_type") or "").strip() or None


def _back() -> Any:
    failed_type = _failed_type()
    return redirect(
        url_for("console.console", type=failed_type) if failed_type else url_for("console.console")
    )


@bp.get("")
@console_viewer_required
def console() -> Any:
    from shared.jobtypes import QUEUES
    from shared.rollups import ALL_QUEUES, Rollups

    queue = request.args.get("history") or ALL_QUEUES
    queue = queue if queue in QUEUES else ALL_QUEUES
    history = Rollups(services().settings.resolved_database_url).series(queue)
    return render_template(
        "admin.html",
        flower_url=services().settings.flower_url,
        refresh_s=REFRESH_INTERVAL_S,
        history=history,
        history_queue=queue,
        history_queues=[ALL_QUEUES, *QUEUES],
        **panel_context(_failed_type()),
    )


@bp.get("/panel")
@console_viewer_required
def panel() -> Any:
    return render_template("admin_panel.html", **panel_context(_failed_type()))


def _act(action: Callable[[], str]) -> Any:
    """Run one action, flash its outcome, go back to the console."""
    try:
        flash(action(), "info")
    except ServiceError as exc:
        flash(exc.message, "error")
    return _back()


@bp.post("/queues/<name>/<any(pause, resume):action>")
@console_admin_required
def queue_action(name: str, action: str) -> Any:
    def run() -> str:
        operations().set_queue_paused(name, action == "pause", g.user.email)
        return f"Queue {name} {'paused' if action == 'pause' else 'resumed'}."

    return _act(run)


@bp.post("/failed/<job_id>/<any(retry, discard):action>")
@console_admin_required
def failed_action(job_id: str, action: str) -> Any:
    def run() -> str:
        ops = operations()
        job = (ops.retry_failed if action == "retry" else ops.discard_failed)(job_id, g.user.email)
        return f"Job {job['id'][:8]} ({job['type']}) {'retried' if action == 'retry' else 'discarded'}."

    return _act(run)


@bp.post("/failed/all/<any(retry, discard):action>")
@console_admin_required
def failed_bulk_action(action: str) -> Any:
    def run() -> str:
        ops = operations()
        job_type = request.form.get("type", "")
        bulk = ops.retry_failed_of_type if action == "retry" else ops.discard_failed_of_type
        count = bulk(job_type, g.user.email)
        return f"{count} failed {job_type} job(s) {'retried' if action == 'retry' else 'discarded'}."

    return _act(run)


@bp.post("/recurring/<name>/<any(pause, resume, run):action>")
@console_admin_required
def recurring_action(name: str, action: str) -> Any:
    def run() -> str:
        apply_recurring_action(name, action, g.user.email)
        done = {"pause": "paused", "resume": "resumed", "run": "sent to run now"}[action]
        return f"Recurring task {name} {done}."

    return _act(run)
