"""Exports: the form that starts a ``report.export`` job, and the download of its file.

``/jobs/<id>/download`` (session) and ``/api/jobs/<id>/download`` (bearer) answer 404 for a job that is
not the caller's, is not a finished export, or whose file is gone (deleted by retention).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, g, redirect, render_template, request, send_file, url_for

from shared.errors import LimitReached, NotFound, ServiceError
from shared.flagship.exports import CONTENT_TYPES, EXPORT_JOB, export_path
from shared.models import User
from web.auth import api_user_required, login_required
from web.services import services

bp = Blueprint("exports", __name__)
KINDS = {"jobs": "Your jobs", "characters": "Your characters"}


def export_file(user: User, job_id: str) -> tuple[Path, str, str]:
    """(path, download name, content type) of a finished export the user may see; NotFound otherwise."""
    job = services().jobs.get(user, job_id)
    result = job.get("result") or {}
    fmt = (job.get("params") or {}).get("format")
    if job["type"] != EXPORT_JOB or job["status"] != "succeeded" or fmt not in CONTENT_TYPES:
        raise NotFound("This job has no file to download.")
    path = export_path(services().settings.instance_dir, job["id"], fmt)
    if not path.is_file():
        raise NotFound("The file of this export is gone (exports are kept for the retention period).")
    return path, str(result.get("filename") or path.name), CONTENT_TYPES[fmt]


def _send(user: User, job_id: str) -> Any:
    path, name, content_type = export_file(user, job_id)
    return send_file(path, mimetype=content_type, as_attachment=True, download_name=name, max_age=0)


@bp.get("/api/jobs/<job_id>/download")
@api_user_required
def api_download(job_id: str) -> Any:
    return _send(g.user, job_id)


@bp.get("/jobs/<job_id>/download")
@login_required
def download(job_id: str) -> Any:
    try:
        return _send(g.user, job_id)
    except NotFound:
        abort(404)


@bp.get("/exports")
@login_required
def export_form() -> Any:
    return render_template("exports.html", kinds=KINDS, form={}, form_error=None)


@bp.post("/exports")
@login_required
def export_create() -> Any:
    form = {"kind": request.form.get("kind", ""), "format": request.form.get("format", "")}
    try:
        job, _ = services().jobs.submit(g.user, EXPORT_JOB, form)
    except LimitReached as exc:
        return render_template("exports.html", kinds=KINDS, form=form, form_error=exc.message), 429
    except ServiceError as exc:
        message = "; ".join(f"{k.removeprefix('params.')}: {v}" for k, v in (exc.fields or {}).items())
        return render_template("exports.html", kinds=KINDS, form=form, form_error=message or exc.message), 422
    return redirect(url_for("pages.job_page", job_id=job["id"]))
