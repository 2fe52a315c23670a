"""server-side sessions (user_sessions), API token prefixes and last use

Revision ID: 0007_server_sessions
Revises: 0005
Create Date: 2026-12-01 21:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_server_sessions"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("id_hash", name="uq_user_sessions_id_hash"),
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])
    op.create_index("ix_user_sessions_expires_at", "user_sessions", ["expires_at"])
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prefix", sa.String(32), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(), nullable=True))
        batch_op.create_index("ix_api_tokens_prefix", ["prefix"])
    # Tokens issued before this revision have no known prefix: they are listed as "id<N>".
    op.execute("UPDATE api_tokens SET prefix = 'id' || CAST(id AS VARCHAR(20)) WHERE prefix IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_api_tokens_prefix")
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("prefix")
    op.drop_index("ix_user_sessions_expires_at", table_name="user_sessions")
    op.drop_index("ix_user_sessions_user_id", table_name="user_sessions")
    op.drop_table("user_sessions")
