"""application jobs: webhook deliveries and the character full-text index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00.000000

The searchable rows are a plain table on both databases; the full-text index over them is per dialect:
SQLite gets an external-content FTS5 table kept in step by triggers, PostgreSQL a generated tsvector
column with a GIN index.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SQLITE_FTS = [
    """CREATE VIRTUAL TABLE character_search_fts USING fts5(
        name, body, content='character_search', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER character_search_ai AFTER INSERT ON character_search BEGIN
        INSERT INTO character_search_fts(rowid, name, body) VALUES (new.id, new.name, new.body);
    END""",
    """CREATE TRIGGER character_search_ad AFTER DELETE ON character_search BEGIN
        INSERT INTO character_search_fts(character_search_fts, rowid, name, body)
        VALUES ('delete', old.id, old.name, old.body);
    END""",
    """CREATE TRIGGER character_search_au AFTER UPDATE ON character_search BEGIN
        INSERT INTO character_search_fts(character_search_fts, rowid, name, body)
        VALUES ('delete', old.id, old.name, old.body);
        INSERT INTO character_search_fts(rowid, name, body) VALUES (new.id, new.name, new.body);
    END""",
]

POSTGRES_FTS = [
    """ALTER TABLE character_search ADD COLUMN document tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', coalesce(name, '')), 'A') ||
        setweight(to_tsvector('simple', coalesce(body, '')), 'B')) STORED""",
    "CREATE INDEX ix_character_search_document ON character_search USING gin (document)",
]


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=50), nullable=False),
        sa.Column("delivery_id", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=100), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("processed_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_webhook_deliveries_job_id", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint("source", "delivery_id", name="uq_webhook_deliveries_source_delivery"),
    )
    op.create_index("ix_webhook_deliveries_received_at", "webhook_deliveries", ["received_at"])

    op.create_table(
        "character_search",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("character_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("indexed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["character_id"],
            ["characters.id"],
            name="fk_character_search_character_id",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_character_search"),
        sa.UniqueConstraint("character_id", name="uq_character_search_character_id"),
    )
    op.create_index("ix_character_search_user_id", "character_search", ["user_id"])

    dialect = op.get_bind().dialect.name
    for statement in SQLITE_FTS if dialect == "sqlite" else POSTGRES_FTS if dialect == "postgresql" else []:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("character_search_au", "character_search_ad", "character_search_ai"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS character_search_fts")
    op.drop_index("ix_character_search_user_id", table_name="character_search")
    op.drop_table("character_search")
    op.drop_index("ix_webhook_deliveries_received_at", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
