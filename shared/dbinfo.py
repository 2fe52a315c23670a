"""Which database a command uses, and whether it is a new one (so a CLI run from the wrong place says so).

A command that silently creates a second, empty database makes users and login links the running
server never sees; the CLI names the database it uses and shouts when it is new.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url


def describe(url: str) -> str:
    """The URL with its password masked."""
    return make_url(url).render_as_string(hide_password=True)


def is_new(url: str) -> bool:
    """True when the database has no Questboard schema yet (a SQLite file that does not exist, or no
    ``alembic_version`` table). An unreachable database counts as not new: the upgrade reports it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        return not path or path == ":memory:" or not Path(path).exists() or Path(path).stat().st_size == 0
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return not inspect(conn).has_table("alembic_version")
    except Exception:  # unreachable: `upgrade` fails with the real error
        return False
    finally:
        engine.dispose()


def announcement(url: str, new: bool, instance_dir: Path) -> str:
    """What the CLI prints (to stderr) before it uses the database."""
    line = f"questboard: database {describe(url)}"
    if not new:
        return line
    return (
        f"{line}\nquestboard: this database is NEW (created just now, instance folder {instance_dir}). "
        "A running `questboard up` with another instance folder or DATABASE_URL will not know the users "
        "and links made here: set QUESTBOARD_INSTANCE_DIR / DATABASE_URL as it has them."
    )
