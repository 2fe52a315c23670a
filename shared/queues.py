"""Queue pause/resume, persisted in the database.

Every worker reads the paused set in its maintenance loop (about once a second, and at start-up) and stops
or resumes consuming those queues, so a pause survives worker restarts; see ``workers.maintenance``.
"""

from __future__ import annotations

from sqlalchemy import select

from shared.db import get_sessionmaker
from shared.errors import NotFound
from shared.jobtypes import QUEUES
from shared.models import QueueState, utcnow


class QueueControl:
    def __init__(self, database_url: str) -> None:
        self._sessions = get_sessionmaker(database_url)

    def set_paused(self, name: str, paused: bool, actor: str) -> None:
        if name not in QUEUES:
            raise NotFound(f"No queue {name!r}; queues are {', '.join(QUEUES)}.")
        with self._sessions() as session:
            state = session.get(QueueState, name) or QueueState(name=name)
            state.paused, state.changed_by, state.changed_at = paused, actor, utcnow()
            session.add(state)
            session.commit()

    def paused(self) -> set[str]:
        with self._sessions() as session:
            return set(session.scalars(select(QueueState.name).where(QueueState.paused.is_(True))))
