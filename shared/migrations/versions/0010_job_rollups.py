"""job rollups: per-queue run counts and wait/run percentiles per minute and per 15 minutes

Revision ID: 0010_job_rollups
Revises: 0007_server_sessions
Create Date: 2026-12-01 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_job_rollups"
down_revision = "0007_server_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_rollups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bucket_s", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(), nullable=False),
        sa.Column("queue", sa.String(length=50), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("wait_p50_ms", sa.Integer(), nullable=True),
        sa.Column("wait_p95_ms", sa.Integer(), nullable=True),
        sa.Column("run_p50_ms", sa.Integer(), nullable=True),
        sa.Column("run_p95_ms", sa.Integer(), nullable=True),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("bucket_s", "bucket_start", "queue", name="uq_job_rollups_bucket"),
    )


def downgrade() -> None:
    op.drop_table("job_rollups")
