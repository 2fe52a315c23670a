"""The ``questboard`` command (contract §1)."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click

from shared.settings import Settings, get_settings, usable_basic_auth

CELERY_APP = "workers.celery_app:celery_app"
QUEUE_GROUPS = {"critical-high": "critical,high", "default-low": "default,low"}
# The prefork worker `questboard up` runs for the jobs of "process" types of every queue.
PROCESS_GROUP = ("process", "critical,high,default,low")
PROCESS_ROLE = "worker process types"
# --pool: "threads" runs the thread types of its queues; "process" a prefork pool for the process types
# of its queues (their ".process" twins); "prefork" a prefork pool for both (one worker for everything).
WORKER_POOLS = ("threads", "process", "prefork")
FLOWER_PORT = 5555


def _settings() -> Settings:
    return get_settings()


@click.group()
def main() -> None:
    """Questboard: background jobs for Flask, with live progress."""


# ----- database and users -----------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations (idempotent)."""
    from shared.db import upgrade

    settings = _settings()
    settings.ensure_instance_dir()
    _announce_database(settings)
    upgrade(settings.resolved_database_url)
    click.echo("database is up to date")


@main.group()
def users() -> None:
    """User accounts."""


def _accounts() -> object:
    from shared.accounts import Accounts
    from shared.db import upgrade

    settings = _settings()
    settings.ensure_instance_dir()
    _announce_database(settings)
    upgrade(settings.resolved_database_url)
    return Accounts(settings.resolved_database_url)


def _announce_database(settings: Settings) -> None:
    """Say on stderr which database this command uses, loudly when it is a new one."""
    from shared import dbinfo

    url = settings.resolved_database_url
    click.echo(dbinfo.announcement(url, dbinfo.is_new(url), settings.instance_dir), err=True)


@users.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Make the user an operator (admin).")
@click.option(
    "--viewer", is_flag=True, help="Make the user a read-only operator (sees /admin, changes nothing)."
)
def users_create(email: str, admin: bool, viewer: bool) -> None:
    """Create the user (or find it) and print a new API token as the last line."""
    if admin and viewer:
        raise click.UsageError("give --admin or --viewer, not both")
    accounts = _accounts()
    try:
        user = accounts.ensure_user(email, admin=admin)  # type: ignore[attr-defined]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if viewer:
        from shared.admin import grant_viewer

        user = grant_viewer(_settings().resolved_database_url, user.id)
    token = accounts.issue_api_token(user)  # type: ignore[attr-defined]
    role = ", admin" if user.is_admin else ", viewer" if user.is_viewer else ""
    click.echo(f"user {user.email} (id {user.id}{role})", err=True)
    click.echo(token)


@users.command("login-link")
@click.argument("email")
def users_login_link(email: str) -> None:
    """Print a one-time magic-link URL (valid 15 min, single use) as the last line."""
    accounts = _accounts()
    user = accounts.find_user(email)  # type: ignore[attr-defined]
    if user is None:
        raise click.ClickException(f"no user {email!r}; create one with 'questboard users create {email}'")
    click.echo(accounts.create_magic_link(user, _settings().base_url))  # type: ignore[attr-defined]


# ----- single roles -----------------------------------------------------------------------------


def web_argv(host: str, port: int) -> list[str]:
    """The command `questboard web` runs: WEB_CONCURRENCY evented gunicorn processes (shared.webserver)."""
    from shared.processes import python_module
    from shared.webserver import gunicorn_args, web_concurrency

    try:
        workers = web_concurrency()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    return python_module("gunicorn", *gunicorn_args(f"{host}:{port}", workers))


def broker_queues(queues: str, pool: str) -> str:
    """The broker queues a worker of ``pool`` consumes for the public ``queues`` (shared.jobtypes)."""
    from shared.jobtypes import broker_queue

    names = [q for q in queues.split(",") if q]
    if pool == "threads":
        return ",".join(names)
    twins = [broker_queue(q, "process") for q in names]
    if pool == "process":
        return ",".join(twins)
    return ",".join(n for pair in zip(names, twins, strict=True) for n in pair)  # prefork: both, in order


def worker_argv(
    queues: str, concurrency: int, name: str, app: str = CELERY_APP, pool: str = "threads"
) -> list[str]:
    """The worker command line `questboard worker` runs (``app`` only differs for benchmark baselines).
    ``pool`` "threads": ``concurrency`` threads in one process; "process"/"prefork": ``concurrency``
    pool processes."""
    from shared.processes import python_module

    if pool not in WORKER_POOLS:
        raise ValueError(f"pool must be one of {', '.join(WORKER_POOLS)}")
    return python_module(
        "celery",
        "-A",
        app,
        "worker",
        "--queues",
        broker_queues(queues, pool),
        "--pool",
        "threads" if pool == "threads" else "prefork",
        "--concurrency",
        str(concurrency),
        "--hostname",
        f"{name}@%h",
        "--loglevel",
        "INFO",
        "--without-mingle",
        "--without-gossip",
    )


def beat_argv(instance_dir: Path) -> list[str]:
    from shared.processes import python_module

    return python_module(
        "celery",
        "-A",
        CELERY_APP,
        "beat",
        "--scheduler",
        "workers.recurring:PausableRedBeatScheduler",
        "--loglevel",
        "INFO",
        "--pidfile",
        "",
    )


def flower_argv(port: int, address: str = "127.0.0.1") -> list[str]:
    """Flower's command line. The credentials are not on it (``ps`` shows it to everyone on the host):
    Flower reads them from FLOWER_BASIC_AUTH in its environment (``flower_env``)."""
    from shared.processes import python_module

    return python_module(  # workers.flower_main: celery's own command, /metrics behind the auth too
        "workers.flower_main",
        "-A",
        CELERY_APP,
        "flower",
        f"--port={port}",
        f"--address={address}",
    )


def flower_env(basic_auth: str) -> dict[str, str]:
    """The environment that gives Flower its basic-auth credentials."""
    return {"FLOWER_BASIC_AUTH": basic_auth}


def _check_queues(queues: str) -> str:
    from shared.jobtypes import QUEUES

    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in names if q not in QUEUES]
    if not names or unknown:
        raise click.BadParameter(
            f"unknown queue(s) {', '.join(unknown) or queues!r}; known: {', '.join(QUEUES)}"
        )
    return ",".join(names)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def web(host: str, port: int) -> None:
    """Serve the web app (HTTP and Socket.IO)."""
    argv = web_argv(host, port)
    os.execv(argv[0], argv)


@main.command()
@click.option("--queues", "-Q", required=True, help="Comma-separated: critical, high, default, low.")
@click.option(
    "--pool",
    type=click.Choice(WORKER_POOLS),
    default="threads",
    show_default=True,
    help="threads: the thread types of the queues; process: their process types (prefork); "
    "prefork: both, on a prefork pool.",
)
@click.option(
    "--concurrency",
    "-c",
    type=int,
    default=None,
    help="Threads (default JOB_THREADS) or, for a prefork pool, processes (default JOB_CONCURRENCY).",
)
@click.option("--name", default=None, help="Worker name (default: the queues).")
@click.option("--detach", is_flag=True, help="Run in the background (needs --pid-file).")
@click.option("--pid-file", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option(
    "--logfile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --detach: where output goes (default: the instance folder).",
)
def worker(
    queues: str,
    pool: str,
    concurrency: int | None,
    name: str | None,
    detach: bool,
    pid_file: Path | None,
    logfile: Path | None,
) -> None:
    """Run a worker pool on the given queues (in the foreground, or --detach with a --pid-file)."""
    queues = _check_queues(queues)
    name = name or queues.replace(",", "-") + ("" if pool == "threads" else f"-{pool}")
    settings = _settings()
    default = settings.job_threads if pool == "threads" else settings.job_concurrency
    argv = worker_argv(queues, concurrency or default, name, pool=pool)
    if not detach:
        if pid_file is not None:
            raise click.UsageError("--pid-file goes with --detach")
        os.execv(argv[0], argv)
    if pid_file is None:
        raise click.UsageError("--detach needs --pid-file PATH")
    from questboard import cli_daemon

    cli_daemon.start_worker(
        argv, pid_file, logfile or _settings().ensure_instance_dir() / f"worker-{name}.log"
    )


@main.command()
def beat() -> None:
    """Run the recurring-task scheduler (one per installation; a Redis lock keeps it single)."""
    argv = beat_argv(_settings().ensure_instance_dir())
    os.execv(argv[0], argv)


@main.command()
@click.option("--port", default=FLOWER_PORT, show_default=True, type=int)
@click.option("--address", default="127.0.0.1", show_default=True, help="Interface to listen on.")
def flower(port: int, address: str) -> None:
    """Run Flower. Refuses to start without FLOWER_BASIC_AUTH (user:password)."""
    auth = _settings().flower_basic_auth
    if not usable_basic_auth(auth):
        raise click.ClickException("FLOWER_BASIC_AUTH=user:password is required: Flower never runs open.")
    argv = flower_argv(port, address)
    os.execve(argv[0], argv, {**os.environ, **flower_env(auth)})


# ----- everything ---------------------------------------------------------------------------------


def _flower_auth(settings: Settings) -> tuple[str, str]:
    """FLOWER_BASIC_AUTH, or credentials generated once into the instance folder (mode 0600)."""
    if settings.flower_basic_auth:
        if not usable_basic_auth(settings.flower_basic_auth):
            raise click.ClickException("FLOWER_BASIC_AUTH must be user:password, both given.")
        return settings.flower_basic_auth, "FLOWER_BASIC_AUTH"
    path = settings.ensure_instance_dir() / "flower_auth"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"admin:{secrets.token_urlsafe(18)}\n")
    return path.read_text().strip(), str(path)


@main.command()
@click.option("--port", default=5000, show_default=True, type=int, help="The web's port.")
@click.option("--no-flower", is_flag=True, help="Do not start Flower.")
@click.option(
    "--flower-port",
    default=FLOWER_PORT,
    show_default=True,
    type=int,
    envvar="QUESTBOARD_FLOWER_PORT",
    help="Flower's port (or QUESTBOARD_FLOWER_PORT).",
)
def up(port: int, no_flower: bool, flower_port: int) -> None:
    """Run the whole system on this machine, supervised: web, workers, beat and Flower."""
    from questboard.cli_up import up_roles
    from questboard.ports import port_problems
    from questboard.supervisor import Supervisor
    from shared import processes
    from shared.db import upgrade
    from shared.rolestate import StatePublisher

    settings = _settings()
    instance = settings.ensure_instance_dir().resolve()
    try:
        redis_role, roles = up_roles(settings, instance, port, None if no_flower else flower_port)
    except processes.RedisUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    concurrency = settings.job_concurrency
    flower_line = "Flower:   not started (--no-flower)"
    if not no_flower:
        flower_line = (
            f"Flower:   http://127.0.0.1:{flower_port}  (basic auth from {_flower_auth(settings)[1]})"
        )

    problems = port_problems(p for role in [redis_role, *roles] if role for p in role.ports)
    if problems:  # before anything starts
        raise click.ClickException("cannot start: " + "; ".join(problems))

    supervisor = Supervisor(log=lambda line: click.echo(line, err=True))
    supervisor.handle_signals()
    publisher: StatePublisher | None = None
    exit_code = 0
    try:
        if redis_role is not None:
            (instance / "redis").mkdir(exist_ok=True)
            supervisor.add(redis_role)
            try:
                processes.wait_redis(settings.redis_url, lambda: supervisor.alive("redis"))
            except processes.RedisUnavailable as exc:
                raise click.ClickException(str(exc)) from exc
            click.echo(f"started a private redis-server (data in {instance / 'redis'})")
        click.echo(f"Redis:    {_describe_redis(settings.redis_url, own=redis_role is not None)}")

        upgrade(settings.resolved_database_url)
        settings.resolved_secret_key()
        click.echo(f"database ready: {_describe_db(settings.resolved_database_url)}")
        publisher = StatePublisher(settings.redis_url)
        supervisor.on_change = publisher.publish
        for role in roles:
            if not supervisor.stop_requested:
                supervisor.add(role)
        click.echo(
            "\n".join(
                [
                    "Questboard is up:",
                    f"Web:      http://127.0.0.1:{port}  (pages, /api, Socket.IO /jobs)",
                    f"API:      http://127.0.0.1:{port}/api/openapi.json",
                    f"Health:   http://127.0.0.1:{port}/healthz  http://127.0.0.1:{port}/readyz",
                    f"Console:  http://127.0.0.1:{port}/admin  (operators; metrics at /metrics)",
                    flower_line,
                    f"Workers:  {', '.join(QUEUE_GROUPS.values())} ({concurrency} processes"
                    f" x {settings.job_threads} threads each)"
                    + (
                        "; process types: a prefork worker"
                        if any(r.name == PROCESS_ROLE for r in roles)
                        else ""
                    ),
                    "Each role is supervised (started again when it exits); /readyz and /admin show them.",
                    "Press Ctrl+C to stop.",
                ]
            )
        )
        exit_code = supervisor.run(before_last=publisher.close)
    finally:  # also on a failed start: nothing started here outlives `up`
        supervisor.stop(before_last=publisher.close if publisher else None)
    click.echo("stopped")
    sys.exit(exit_code)


def _describe_redis(url: str, own: bool) -> str:
    """Which Redis ``up`` uses, password masked: its own private one or the one at REDIS_URL."""
    from shared.redisurl import describe

    shown = describe(url)
    where = "private redis-server started by questboard up" if own else "the one at REDIS_URL"
    return f"{shown}  ({where})"


def _describe_db(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _register_subcommands() -> None:
    from questboard import cli_daemon, cli_operator, cli_users

    main.add_command(cli_operator.jobs)
    main.add_command(cli_operator.queues)
    cli_daemon.register(main, cli_operator.jobs)
    cli_users.register(users)


_register_subcommands()
