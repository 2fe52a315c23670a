"""debounce: a job's debounce key, and at most one scheduled job per (owner, type, key)

Revision ID: 0014_debounce
Revises: 0013_fair_share
Create Date: 2026-12-02 01:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_debounce"
down_revision = "0013_fair_share"
branch_labels = None
depends_on = None

WHILE_SCHEDULED = sa.text("status = 'scheduled' AND debounce_key IS NOT NULL")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("debounce_key", sa.String(length=200), nullable=True))
    op.create_index(
        "uq_jobs_debounce_scheduled",
        "jobs",
        ["user_id", "type", "debounce_key"],
        unique=True,
        sqlite_where=WHILE_SCHEDULED,
        postgresql_where=WHILE_SCHEDULED,
    )


def downgrade() -> None:
    op.drop_index("uq_jobs_debounce_scheduled", table_name="jobs")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("debounce_key")
