"""What the pages read (no Flask): a job's detail and a user's list with follow-ups under their parent.
Owners see their own jobs; admins and viewers every job."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared import defaults
from shared.db import get_sessionmaker
from shared.errors import NotFound
from shared.jobbrowser import attempt_to_public, may_see
from shared.jobs import encode_cursor, newest_first
from shared.models import Character, Job, JobAttempt, JobEvent, User
from shared.serialize import event_to_dict, job_to_dict
from shared.states import Status
from shared.waiting import waiting_reason

CHILDREN_SHOWN = 200


def character_to_dict(c: Character) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "race": c.race,
        "char_class": c.char_class,
        "level": c.level,
        "alignment": c.alignment,
        "job_id": c.job_id,
        "created_at": c.created_at,
    }


class JobPages:
    def __init__(self, database_url: str) -> None:
        self._sessions = get_sessionmaker(database_url)

    def detail(self, user: User, job_id: str) -> dict[str, Any]:
        """The job, why it waits, its owner, attempts, events, parent, children and (fan-outs) the characters
        made."""
        with self._sessions() as session:
            job = session.get(Job, job_id)
            if job is None or not may_see(user, job):
                raise NotFound("No such job.")
            owner = session.get(User, job.user_id)
            attempts = session.scalars(
                select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number)
            )
            events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
            parent = session.get(Job, job.parent_id) if job.parent_id else None
            children = list(
                session.scalars(
                    select(Job)
                    .where(Job.parent_id == job_id)
                    .order_by(Job.created_at, Job.id)
                    .limit(CHILDREN_SHOWN)
                )
            )
            made = session.scalars(
                select(Character)
                .where(Character.job_id.in_([c.id for c in children]))
                .order_by(Character.created_at)
            )
            return {
                "job": job_to_dict(job),
                "waiting": waiting_reason(session, job),
                "owner": owner.email if owner else "",
                "attempts": [attempt_to_public(a) for a in attempts],
                "events": [event_to_dict(e) for e in events],
                "parent": job_to_dict(parent) if parent is not None and may_see(user, parent) else None,
                "children": [job_to_dict(c) for c in children],
                "characters": [character_to_dict(c) for c in made] if children else [],
            }

    def user_list(
        self,
        user: User,
        statuses: list[str] | None = None,
        types: list[str] | None = None,
        cursor: str | None = None,
        limit: int = defaults.LIST_LIMIT_DEFAULT,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The user's top-level jobs, newest first, each with ``children`` (its follow-ups, oldest first).

        A follow-up is listed under its parent, never on its own; the filters apply to the top-level jobs.
        """
        stmt = select(Job).where(Job.user_id == user.id, Job.parent_id.is_(None))
        if statuses:
            stmt = stmt.where(Job.status.in_(statuses))
        if types:
            stmt = stmt.where(Job.type.in_(types))
        stmt = newest_first(stmt, cursor, limit)
        with self._sessions() as session:
            jobs = list(session.scalars(stmt))
            page = jobs[:limit]
            kids: dict[str, list[dict[str, Any]]] = {j.id: [] for j in page}
            if page:
                rows = session.scalars(
                    select(Job)
                    .where(Job.parent_id.in_(list(kids)), Job.user_id == user.id)
                    .order_by(Job.created_at, Job.id)
                )
                for child in rows:
                    kids[child.parent_id].append(job_to_dict(child))  # type: ignore[index]
        next_cursor = encode_cursor(jobs[limit - 1]) if len(jobs) > limit else None
        return [{**job_to_dict(j), "children": kids[j.id]} for j in page], next_cursor

    def user_types(self, user: User) -> list[str]:
        """The types of the user's top-level jobs (the list's type filter)."""
        with self._sessions() as session:
            rows = session.scalars(
                select(Job.type).where(Job.user_id == user.id, Job.parent_id.is_(None)).distinct()
            )
            return sorted(rows)


STATUS_VALUES = [s.value for s in Status]
