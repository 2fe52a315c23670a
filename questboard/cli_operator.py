"""Operator commands: the console's actions from a shell (audit actor ``cli:<os user>``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from shared.admin import Operations


def _operations() -> Operations:
    from questboard.app import current

    return current().operations


def _operator_call(action: Any, *args: Any) -> Any:
    """Run one operator action; a refused one becomes a clear message and exit status 1."""
    from shared.errors import ServiceError

    try:
        return action(*args)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from exc


@click.group()
def jobs() -> None:
    """Jobs as operators see them: counts, the dead-letter set, retries."""


@jobs.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print the admin API's JSON instead.")
def jobs_stats(as_json: bool) -> None:
    """Jobs by status and by type."""

    stats = _operations().stats()
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    for status, count in stats["by_status"].items():
        click.echo(f"{status:<10} {count:>7}")
    for job_type, counts in stats["by_type"].items():
        click.echo(f"{job_type}: " + " ".join(f"{s}={n}" for s, n in counts.items()))


@jobs.command("failed")
@click.option("--type", "job_type", default=None, help="Only jobs of this type.")
def jobs_failed(job_type: str | None) -> None:
    """The dead-letter set, newest first: id, type, attempts, when, error."""
    failed = _operations().failed(job_type)
    if not failed:
        click.echo("no failed jobs" + (f" of type {job_type}" if job_type else ""), err=True)
    for job in failed:
        error = job["error"] or {}
        click.echo(
            f"{job['id']}  {job['type']}  attempts {job['attempts']}/{job['max_attempts']}  "
            f"{job['finished_at']}  {error.get('type', '?')}: {error.get('message', '')}"
        )


def _dead_letter_command(verb: str, job_id: str | None, job_type: str | None) -> None:
    if bool(job_id) == bool(job_type):
        raise click.UsageError(f"give a job ID or --type T (one of them) to {verb}")
    from shared.admin import actor_for_cli

    ops, actor = _operations(), actor_for_cli()
    if job_id:
        one = getattr(ops, f"{verb}_failed")
        job = _operator_call(one, job_id, actor)
        click.echo(f"{verb} job {job['id']} ({job['type']}): now {job['status']}")
    else:
        bulk = getattr(ops, f"{verb}_failed_of_type")
        count = _operator_call(bulk, job_type, actor)
        click.echo(f"{verb} {count} failed {job_type} job(s)")


@jobs.command("retry")
@click.argument("job_id", required=False)
@click.option("--type", "job_type", default=None, help="Retry every failed job of this type.")
def jobs_retry(job_id: str | None, job_type: str | None) -> None:
    """Retry one failed job (ID) or every failed job of a type, with a fresh budget of attempts."""
    _dead_letter_command("retry", job_id, job_type)


@jobs.command("discard")
@click.argument("job_id", required=False)
@click.option("--type", "job_type", default=None, help="Discard every failed job of this type.")
def jobs_discard(job_id: str | None, job_type: str | None) -> None:
    """Take one failed job (ID) or every failed job of a type out of the dead-letter set."""
    _dead_letter_command("discard", job_id, job_type)


@jobs.command("why")
@click.argument("job_id")
def jobs_why(job_id: str) -> None:
    """Why job JOB_ID is not running yet (as its page says); exit 1 for an unknown id."""
    from questboard.app import current
    from shared.waiting import explain

    job, reason = _operator_call(explain, current().database_url, job_id)
    if reason is None:
        click.echo(f"job {job['id']} ({job['type']}) is {job['status']}: not waiting")
        return
    click.echo(f"job {job['id']} ({job['type']}) is {job['status']}: {reason['message']}")
    click.echo(f"reason: {reason['code']}" + (f" until {reason['until']}" if reason["until"] else ""))


@click.group()
def queues() -> None:
    """Pause and resume queues (every worker follows within about a second, restarts included)."""


@queues.command("pause")
@click.argument("name")
def queues_pause(name: str) -> None:
    """Workers stop taking jobs from queue NAME; its jobs wait."""
    from shared.admin import actor_for_cli

    _operator_call(_operations().set_queue_paused, name, True, actor_for_cli())
    click.echo(f"queue {name} paused: its jobs wait until 'questboard queues resume {name}'")


@queues.command("resume")
@click.argument("name")
def queues_resume(name: str) -> None:
    """Workers take jobs from queue NAME again."""
    from shared.admin import actor_for_cli

    _operator_call(_operations().set_queue_paused, name, False, actor_for_cli())
    click.echo(f"queue {name} resumed")
