"""``questboard users revoke`` and ``users tokens``: ending a person's access (docs/operations.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from shared.sessions import ServerSessions


def _server_sessions() -> ServerSessions:
    from shared.db import upgrade
    from shared.sessions import ServerSessions
    from shared.settings import get_settings

    settings = get_settings()
    settings.ensure_instance_dir()
    upgrade(settings.resolved_database_url)
    return ServerSessions(settings.resolved_database_url)


@click.command("revoke")
@click.argument("email")
def users_revoke(email: str) -> None:
    """End every session and every API token of the user (they must sign in again)."""
    from shared.sessions import UnknownUser

    try:
        sessions, tokens = _server_sessions().revoke_user(email)
    except UnknownUser as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"ended {sessions} session(s) and {tokens} API token(s) of {email.strip().lower()}")


@click.command("tokens")
@click.argument("email")
@click.option("--revoke", "prefix", default=None, metavar="PREFIX", help="End the token with this prefix.")
def users_tokens(email: str, prefix: str | None) -> None:
    """List the user's API tokens (prefix, created, last used), or end one with --revoke PREFIX."""
    store = _server_sessions()
    try:
        if prefix is not None:
            store.revoke_token(email, prefix)
            click.echo(f"ended token {prefix}")
            return
        tokens = store.tokens(email)
    except LookupError as exc:  # an unknown address (UnknownUser) or prefix
        raise click.ClickException(str(exc)) from exc
    if not tokens:
        click.echo("no API tokens", err=True)
    click.echo(f"{'PREFIX':<16}{'CREATED (UTC)':<22}LAST USED (UTC)")
    for token in tokens:
        used = token.last_used_at.strftime("%Y-%m-%d %H:%M:%S") if token.last_used_at else "never"
        click.echo(f"{token.prefix:<16}{token.created_at.strftime('%Y-%m-%d %H:%M:%S'):<22}{used}")


def register(users: click.Group) -> None:
    """Add these commands to the ``users`` group."""
    users.add_command(users_revoke)
    users.add_command(users_tokens)
