"""Migration 0007_server_sessions on SQLite and PostgreSQL: existing tokens keep working and get a
listable prefix; the downgrade gives the old schema back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from shared.accounts import Accounts
from shared.db import alembic_config, get_engine

REVISION = "0007_server_sessions"


def test_upgrade_keeps_old_tokens_and_downgrade_restores_the_schema(database_url):
    engine = get_engine(database_url)
    command.downgrade(alembic_config(database_url), "0005")
    engine.dispose()
    assert "user_sessions" not in inspect(engine).get_table_names()
    with engine.begin() as conn:  # a user and a token from before the revision
        conn.execute(
            text(
                "INSERT INTO users (email, is_admin, is_viewer, submit_guard, created_at) "
                "VALUES ('old@example.com', false, false, 0, CURRENT_TIMESTAMP)"
            )
        )
        user_id = conn.execute(text("SELECT id FROM users WHERE email = 'old@example.com'")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO api_tokens (user_id, token_hash, created_at) VALUES (:u, :h, CURRENT_TIMESTAMP)"
            ),
            {"u": user_id, "h": "0" * 64},
        )
    command.upgrade(alembic_config(database_url), REVISION)
    engine.dispose()
    assert {"user_sessions"} <= set(inspect(engine).get_table_names())
    columns = {c["name"] for c in inspect(engine).get_columns("api_tokens")}
    assert {"prefix", "last_used_at"} <= columns
    with engine.connect() as conn:
        prefix = conn.execute(
            text("SELECT prefix FROM api_tokens WHERE user_id = :u"), {"u": user_id}
        ).scalar()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == REVISION
    assert prefix.startswith("id")
    accounts = Accounts(database_url)
    token = accounts.issue_api_token(accounts.ensure_user("new@example.com"))
    assert accounts.user_for_token(token).email == "new@example.com"
    command.downgrade(alembic_config(database_url), "0005")
    engine.dispose()
    assert "user_sessions" not in inspect(engine).get_table_names()
    assert "prefix" not in {c["name"] for c in inspect(engine).get_columns("api_tokens")}
