"""workflows: a workflow row, one step row per job, and the job's workflow_id

Revision ID: 0012_workflows
Revises: 0011_job_browser_indexes
Create Date: 2026-12-02 01:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_workflows"
down_revision = "0011_job_browser_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_workflows_user_id", "workflows", ["user_id"])
    op.create_index("ix_workflows_status", "workflows", ["status"])
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("workflow_id", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_jobs_workflow_id", ["workflow_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_jobs_workflow_id", "workflows", ["workflow_id"], ["id"], ondelete="CASCADE"
        )
    op.create_table(
        "workflow_steps",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("workflow_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("on_failure", sa.String(length=20), nullable=False),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.Column("held_concurrency_key", sa.String(length=200), nullable=True),
        sa.Column("added_by", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workflow_id"], ["workflows.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id"),
        sa.UniqueConstraint("workflow_id", "key", name="uq_workflow_steps_workflow_key"),
    )
    op.create_index("ix_workflow_steps_workflow_id", "workflow_steps", ["workflow_id"])


def downgrade() -> None:
    op.drop_index("ix_workflow_steps_workflow_id", table_name="workflow_steps")
    op.drop_table("workflow_steps")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_jobs_workflow_id", type_="foreignkey")
        batch_op.drop_index("ix_jobs_workflow_id")
        batch_op.drop_column("workflow_id")
    op.drop_index("ix_workflows_status", table_name="workflows")
    op.drop_index("ix_workflows_user_id", table_name="workflows")
    op.drop_table("workflows")
