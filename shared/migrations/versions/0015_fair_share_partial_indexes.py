"""fair share: partial indexes for the queue's in-flight and running counts

The state read of every send and refill (shared.fairshare.STATE) counts a queue's jobs in flight
(queued, not held, message sent) and running. On PostgreSQL a table without statistics yet (a fresh
installation's first minutes, or a burst on a new database) had the planner read those counts through an
index on ``queue`` alone and filter every queued row, so the read grew with the backlog (1.09 ms at 2,000
queued jobs, against 0.15 ms with statistics). These indexes hold only the rows each read wants, so a plan
that uses them reads just those (BENCHMARKS.md, P2, 2026-12-03).

Revision ID: 0015_fair_share_partial
Revises: 0014_debounce
Create Date: 2026-12-03 16:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_fair_share_partial"
down_revision = "0014_debounce"
branch_labels = None
depends_on = None

# (columns, predicate): the predicates are written as shared.fairshare writes its conditions (literals),
# so that every plan, generic ones of prepared statements included, can prove a query matches them.
INDEXES = {
    "ix_jobs_in_flight": (["queue"], "status = 'queued' AND held = false AND needs_dispatch = false"),
    "ix_jobs_running_queue": (["queue"], "status = 'running'"),
    "ix_jobs_held_turns": (["queue", "user_id", "created_at"], "status = 'queued' AND held = true"),
}


def upgrade() -> None:
    # PostgreSQL only: SQLite has no statistics-driven plans to go wrong (its planner takes the index
    # that constrains the most columns, ix_jobs_fair_turns), so there they would only cost writes.
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (columns, where) in INDEXES.items():
        op.create_index(name, "jobs", columns, postgresql_where=sa.text(where))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.drop_index(name, table_name="jobs")
