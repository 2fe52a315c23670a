"""Pages over jobs (contract §6): the job detail's actions and the operators'
browser at /admin/jobs with bulk actions confirmed on a page that states the count (no script needed).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for

from shared.errors import NotFound, ServiceError
from shared.jobbrowser import BulkAction, BulkRequest, JobFilter, JobQuery, parse_or_422
from shared.jobpages import STATUS_VALUES, JobPages
from shared.jobtypes import QUEUES
from shared.jobviews import duration_text, exact_utc, pretty_json, relative_text, timings, user_message
from web.auth import login_required
from web.console import console_admin_required, console_viewer_required
from web.job_browser import job_browser, run_bulk
from web.services import services

bp = Blueprint("job_pages", __name__)
FILTER_KEYS = ("status", "type", "queue", "user", "q", "since", "until")
DONE = {"cancel": "Canceled", "retry": "Retried", "discard": "Discarded"}


def job_pages() -> JobPages:
    pages = current_app.extensions.get("questboard_job_pages")
    if pages is None:
        pages = JobPages(services().settings.resolved_database_url)
        current_app.extensions["questboard_job_pages"] = pages
    return pages


@bp.app_template_filter("ago")
def _ago(value: Any) -> str:
    return relative_text(value)


@bp.app_template_filter("utc")
def _utc(value: Any) -> str:
    return exact_utc(value)


@bp.app_template_filter("duration")
def _duration(value: float | None) -> str:
    return duration_text(value)


@bp.app_template_filter("ms")
def _ms(value: int | None) -> str:
    return duration_text(None if value is None else value / 1000)


@bp.app_template_filter("pretty")
def _pretty(value: Any) -> str:
    return pretty_json(value)


@bp.app_template_filter("user_message")
def _user_message(job: dict[str, Any]) -> str:
    user = getattr(g, "user", None)
    if user is not None and (user.is_admin or user.is_viewer):
        return job.get("message") or ""
    return user_message(job, services().registry)


def detail_context(job_id: str) -> dict[str, Any]:
    """Everything /jobs/<id> shows (404 unless the user owns the job or is an operator)."""
    try:
        detail = job_pages().detail(g.user, job_id)
    except NotFound:
        abort(404)
    job = detail["job"]
    is_owner = job["id"] and detail["owner"] == g.user.email
    return {
        **detail,
        "timings": timings(job),
        "can_cancel": bool(is_owner or g.user.is_admin),
        "can_operate": bool(g.user.is_admin),
        "can_rerun": bool(is_owner or g.user.is_admin) and job["type"] in services().registry,
    }


@bp.post("/jobs/<job_id>/rerun")
@login_required
def job_rerun(job_id: str) -> Any:
    """Run again: a new job of the same type with the same params, owned by whoever asks."""
    job = detail_context(job_id)["job"]
    try:
        new, _ = services().jobs.submit(g.user, job["type"], job["params"], queue=job["queue"])
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("pages.job_page", job_id=job_id))
    return redirect(url_for("pages.job_page", job_id=new["id"]))


def _filter_args(source: Any) -> dict[str, str]:
    """The browser's filters present in ``source`` (query string or form), lists comma-joined."""
    args: dict[str, str] = {}
    for key in FILTER_KEYS:
        values = [v.strip() for v in source.getlist(key) if v.strip()]
        if values:
            args[key] = ",".join(values)
    return args


@bp.get("/admin/jobs")
@console_viewer_required
def browser() -> Any:
    args = _filter_args(request.args)
    query_args = {**args, **{k: request.args[k] for k in ("limit", "cursor") if request.args.get(k)}}
    try:
        query = parse_or_422(JobQuery, query_args, "filter")
    except ServiceError as exc:
        return _browser_page(args, [], None, 0, exc.fields or {}), 422
    jobs, cursor = job_browser().list(query)
    return _browser_page(args, jobs, cursor, job_browser().count(query.filter()), {})


def _browser_page(args: dict[str, str], jobs: list[Any], cursor: str | None, total: int, errors: Any) -> str:
    return render_template(
        "admin_jobs.html",
        args=args,
        jobs=jobs,
        next_cursor=cursor,
        total=total,
        errors=errors,
        statuses=STATUS_VALUES,
        chosen_statuses=args.get("status", "").split(","),
        types=sorted(services().registry),
        queues=QUEUES,
        query_string=urlencode(args),
        can_act=bool(g.user.is_admin),
    )


def _selection(form: Any) -> BulkRequest:
    if form.get("all_matching") == "1":
        data = _filter_args(form)
        if not data:
            raise ServiceError("Choose at least one filter before acting on all matching jobs.")
        return parse_or_422(BulkRequest, {"filter": JobFilter.model_validate(data).selection()}, "selection")
    ids = [i for i in form.getlist("ids") if i]
    if not ids:
        raise ServiceError("Select at least one job.")
    return parse_or_422(BulkRequest, {"ids": ids}, "selection")


@bp.post("/admin/jobs/<any(cancel, retry, discard):action>")
@console_admin_required
def bulk_confirm(action: BulkAction) -> Any:
    """Step one: say how many jobs the action would change and ask to confirm."""
    back = url_for("job_pages.browser") + (
        "?" + urlencode(_filter_args(request.form)) if request.form else ""
    )
    try:
        selection = _selection(request.form)
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(back)
    count = sum(1 for _ in job_browser().matching_ids(selection, action))
    return render_template(
        "admin_jobs_confirm.html",
        action=action,
        count=count,
        ids=selection.ids or [],
        filter_args=_filter_args(request.form),
        all_matching=selection.ids is None,
        back=back,
    )


@bp.post("/admin/jobs/<any(cancel, retry, discard):action>/confirmed")
@console_admin_required
def bulk_apply(action: BulkAction) -> Any:
    """Step two: act (through the same code as the API; one audit entry) and go back to the list."""
    back = url_for("job_pages.browser") + "?" + urlencode(_filter_args(request.form))
    try:
        count = run_bulk(action, _selection(request.form))
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(back)
    flash(f"{DONE[action]} {count} job{'s' if count != 1 else ''}.", "info")
    return redirect(back)
