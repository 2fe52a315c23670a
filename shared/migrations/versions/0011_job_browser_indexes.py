"""job browser indexes: newest-first walks of every job, by status, by type and by queue

Revision ID: 0011_job_browser_indexes
Revises: 0010_job_rollups
Create Date: 2026-12-01 22:10:00.000000
"""

from alembic import op

revision = "0011_job_browser_indexes"
down_revision = "0010_job_rollups"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_jobs_created_id": ["created_at", "id"],
    "ix_jobs_status_created": ["status", "created_at"],
    "ix_jobs_type_created": ["type", "created_at"],
    "ix_jobs_queue_created": ["queue", "created_at"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "jobs", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="jobs")
