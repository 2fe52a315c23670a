"""Daemon mode (``worker --detach``, ``stop``, ``status``) and the job catalog (``jobs types``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from shared.settings import get_settings


def start_worker(argv: list[str], pid_file: Path, log_path: Path) -> None:
    """Start the worker in its own session, write the pid file, wait until it takes jobs."""
    from workers.daemon import DaemonError, PidFile, start_detached, wait_started

    settings = get_settings()
    try:
        pid, replaced = start_detached(argv, PidFile(pid_file), log_path, dict(os.environ))
    except DaemonError as exc:
        raise click.ClickException(str(exc)) from exc
    if replaced:
        click.echo(f"replaced a stale pid file ({pid_file})")
    name = wait_started(pid, settings.redis_url)
    if name is None:
        raise click.ClickException(f"the worker (pid {pid}) did not start; see {log_path}")
    click.echo(f"worker {name} running in the background (pid {pid}, log {log_path})")


@click.command()
@click.option("--pid-file", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds running jobs may take to finish before the worker is killed and they are requeued.",
)
def stop(pid_file: Path, timeout_s: float) -> None:
    """Stop a detached worker: warm shutdown, then requeue what still runs. Exit 0 once it is stopped."""
    from workers.daemon import PidFile
    from workers.daemon import stop as stop_worker

    click.echo(stop_worker(PidFile(pid_file), get_settings(), timeout_s))


@click.command()
@click.option("--pid-file", type=click.Path(dir_okay=False, path_type=Path), required=True)
def status(pid_file: Path) -> None:
    """Whether a detached worker runs: exit 0 running, 3 not running."""
    from workers.daemon import PidFile
    from workers.daemon import status as worker_status

    code, message = worker_status(PidFile(pid_file), get_settings())
    click.echo(message)
    sys.exit(code)


@click.command("types")
@click.option("--markdown", is_flag=True, help="Render docs/jobs.md.")
def jobs_types(markdown: bool) -> None:
    """Every registered job type: queue, params, retry policy, limits, concurrency keys, description."""
    from questboard.app import job_types
    from workers.catalog import render_markdown, render_text

    settings = get_settings()
    registry = job_types(settings.job_modules, settings.time_limits)
    click.echo(render_markdown(registry) if markdown else render_text(registry), nl=False)


def register(main: click.Group, jobs: click.Group) -> None:
    main.add_command(stop)
    main.add_command(status)
    jobs.add_command(jobs_types)
