"""Server-rendered pages (contract §6). Forms carry CSRF tokens; live parts use Socket.IO."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for

from shared.errors import NotFound, ServiceError
from web.auth import log_in, log_out, login_required, user_from_session
from web.mail import request_login_mail
from web.ratelimit import client_ip, login_limits, too_many_attempts
from web.services import services

bp = Blueprint("pages", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect to another host."""
    if not target:
        return url_for("pages.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.index")
    return target


@bp.app_context_processor
def _inject_user() -> dict[str, Any]:
    user = getattr(g, "user", None)
    if user is None and not request.path.startswith("/api/"):
        user = user_from_session()  # error pages and the sign-in pages keep the navigation
    return {"current_user": user}


@bp.get("/login")
def login() -> Any:
    if user_from_session() is not None:
        return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", next=request.args.get("next", ""))


@bp.post("/login")
def login_send() -> Any:
    email = (request.form.get("email") or "").strip()
    wait_s = login_limits().form_wait_s(client_ip(), email)
    if wait_s is not None:
        return too_many_attempts(wait_s)  # the same for every address: it tells nobody who has an account
    next_path = request.form.get("next") or ""
    if next_path:
        session["login_next"] = _safe_next(next_path)
    # The same work for every address: the login.mail job looks it up and mails a link if it has an
    # account. The request neither reads the users table for it nor answers differently.
    request_login_mail(email)
    return render_template("login_sent.html", email=email)


@bp.get("/login/<token>")
def login_with_link(token: str) -> Any:
    limits = login_limits()
    wait_s = limits.link_wait_s(client_ip())
    if wait_s is not None:
        return too_many_attempts(wait_s)  # checked before the link is spent: a good one still works later
    user = services().accounts.consume_magic_link(token)
    if user is None:
        limits.record_bad_link(client_ip())
        return render_template("login_invalid.html"), 400
    next_path = session.pop("login_next", None)
    log_in(user)
    return redirect(_safe_next(next_path))


@bp.post("/logout")
def logout() -> Any:
    log_out()  # the session ends on the server: a copy of the old cookie opens nothing
    return redirect(url_for("pages.login"))


@bp.get("/")
@login_required
def index() -> Any:
    from shared.jobpages import STATUS_VALUES
    from web.job_pages import job_pages

    statuses = [s for s in request.args.getlist("status") if s in STATUS_VALUES]
    types = [t for t in request.args.getlist("type") if t]
    try:
        jobs, next_cursor = job_pages().user_list(g.user, statuses, types, request.args.get("cursor"))
    except ServiceError:
        abort(404)  # a cursor we did not issue
    return render_template(
        "index.html",
        jobs=jobs,
        next_cursor=next_cursor,
        statuses=STATUS_VALUES,
        types=job_pages().user_types(g.user),
        chosen_statuses=statuses,
        chosen_types=types,
    )


@bp.get("/jobs/<job_id>")
@login_required
def job_page(job_id: str) -> Any:
    from web.job_pages import detail_context

    return render_template("job.html", **detail_context(job_id))


@bp.post("/jobs/<job_id>/cancel")
@login_required
def job_cancel(job_id: str) -> Any:
    try:
        services().jobs.cancel(g.user, job_id)
    except NotFound:
        abort(404)
    except ServiceError as exc:
        flash(exc.message, "error")
    return redirect(
        _safe_next(request.form.get("next"))
        if request.form.get("next")
        else url_for("pages.job_page", job_id=job_id)
    )
