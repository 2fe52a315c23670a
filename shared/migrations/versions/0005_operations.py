"""operations: read-only operators (viewers), indexes for the console's and the metrics' time reads

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # server_default: the users that exist already become "not a viewer" on both databases.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_viewer", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"])
    op.create_index("ix_job_attempts_finished_at", "job_attempts", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_job_attempts_finished_at", table_name="job_attempts")
    op.drop_index("ix_jobs_finished_at", table_name="jobs")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("is_viewer")
