"""job policies: uniqueness, concurrency slots, cancel, dead letters, queue pause

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:42:08.897392
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_states",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("changed_by", sa.String(length=320), nullable=True),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "job_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id"),
        sa.UniqueConstraint("key", "slot", name="uq_job_slots_key_slot"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unique_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("concurrency_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("concurrency_limit", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cancel_requested_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("worker_pid", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("needs_dispatch", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("discarded_at", sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_concurrency_key"), ["concurrency_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_needs_dispatch"), ["needs_dispatch"], unique=False)
        batch_op.create_index("ix_jobs_type_unique", ["type", "unique_key"], unique=False)
        batch_op.create_index("ix_jobs_worker_status", ["worker", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_worker_status")
        batch_op.drop_index("ix_jobs_type_unique")
        batch_op.drop_index(batch_op.f("ix_jobs_needs_dispatch"))
        batch_op.drop_index(batch_op.f("ix_jobs_concurrency_key"))
        batch_op.drop_column("discarded_at")
        batch_op.drop_column("needs_dispatch")
        batch_op.drop_column("worker_pid")
        batch_op.drop_column("cancel_requested_at")
        batch_op.drop_column("concurrency_limit")
        batch_op.drop_column("concurrency_key")
        batch_op.drop_column("unique_key")

    op.drop_table("job_slots")
    op.drop_table("queue_states")
