"""The flagship's character pages: the user's characters, the form that submits ``character.generate``, a
character's sheet."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from sqlalchemy import select

from shared.db import get_sessionmaker
from shared.errors import LimitReached, ServiceError
from shared.flagship.characters import ALIGNMENTS, CLASSES, RACES, ordered_abilities, user_characters
from shared.models import Character
from web.auth import login_required
from web.services import services

bp = Blueprint("characters", __name__)


@bp.get("/characters")
@login_required
def listing() -> Any:
    return render_template(
        "characters.html", characters=user_characters(services().settings.resolved_database_url, g.user)
    )


@bp.get("/characters/new")
@login_required
def new() -> Any:
    return render_template(
        "character_new.html", races=RACES, classes=CLASSES, alignments=ALIGNMENTS, form={}, errors={}
    )


@bp.post("/characters/new")
@login_required
def create() -> Any:
    form = request.form.to_dict()
    params: dict[str, Any] = {
        "name": form.get("name", ""),
        "race": form.get("race", ""),
        "char_class": form.get("char_class", ""),
        "level": form.get("level", ""),
    }
    if form.get("alignment"):
        params["alignment"] = form["alignment"]
    try:
        job, _ = services().jobs.submit(g.user, "character.generate", params)
    except LimitReached as exc:
        return _form_error(form, {}, exc.message, 429)
    except ServiceError as exc:
        fields = {k.removeprefix("params."): v for k, v in (exc.fields or {}).items()}
        return _form_error(form, fields, "Please fix the highlighted fields.", 422)
    return redirect(url_for("pages.job_page", job_id=job["id"]))


def _form_error(form: dict[str, Any], errors: dict[str, str], message: str, status: int) -> Any:
    return (
        render_template(
            "character_new.html",
            races=RACES,
            classes=CLASSES,
            alignments=ALIGNMENTS,
            form=form,
            errors=errors,
            form_error=message,
        ),
        status,
    )


@bp.get("/characters/<character_id>")
@login_required
def page(character_id: str) -> Any:
    with get_sessionmaker(services().settings.resolved_database_url)() as db:
        character = db.scalars(select(Character).where(Character.id == character_id)).first()
        if character is None or (character.user_id != g.user.id and not g.user.is_admin):
            abort(404)
        db.expunge(character)
    abilities = ordered_abilities(character.abilities)  # STR, DEX, CON, INT, WIS, CHA
    return render_template("character.html", character=character, abilities=abilities)
