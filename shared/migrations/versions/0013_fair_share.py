"""fair share within a queue: jobs.held and the indexes that pick whose turn it is

Revision ID: 0013_fair_share
Revises: 0012_workflows
Create Date: 2026-12-02 01:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_fair_share"
down_revision = "0012_workflows"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_jobs_fair_turns": ["queue", "status", "held", "user_id", "created_at"],
    "ix_jobs_queue_user_started": ["queue", "user_id", "started_at"],
}


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("held", sa.Boolean(), nullable=False, server_default=sa.false()))
    for name, columns in INDEXES.items():
        op.create_index(name, "jobs", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("held")
