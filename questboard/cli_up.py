"""The roles ``questboard up`` supervises on one machine: their command lines, ports and clean-ups."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import click

from questboard.cli import (
    PROCESS_GROUP,
    PROCESS_ROLE,
    QUEUE_GROUPS,
    _flower_auth,
    beat_argv,
    flower_argv,
    flower_env,
    web_argv,
    worker_argv,
)
from questboard.ports import Port
from questboard.supervisor import Role
from shared import processes
from shared.rolestate import release_beat_lock
from shared.settings import Settings

REDIS_PORT_CHANGE = "nothing there answers as Redis; point REDIS_URL at your Redis or at a free port"
FLOWER_PORT_CHANGE = "choose another with --flower-port (or QUESTBOARD_FLOWER_PORT), or run with --no-flower"


def up_roles(
    settings: Settings, instance: Path, port: int, flower_port: int | None
) -> tuple[Role | None, list[Role]]:
    """(the private Redis to start first, or None when one answers at REDIS_URL; the services).
    ``flower_port`` None: no Flower. Raises RedisUnavailable when no Redis answers and none can start."""
    env = {"QUESTBOARD_INSTANCE_DIR": str(instance)}
    if flower_port is not None and not os.environ.get("QUESTBOARD_FLOWER_URL"):
        env["QUESTBOARD_FLOWER_URL"] = f"http://127.0.0.1:{flower_port}"  # the console's link

    redis_role = None
    if not processes.redis_answers(settings.redis_url):
        host, redis_port = processes.private_redis_target(settings.redis_url)
        redis_role = Role(
            "redis",
            processes.private_redis_argv(settings.redis_url, instance / "redis"),
            ports=(Port(redis_port, "private Redis, from REDIS_URL", REDIS_PORT_CHANGE, host),),
            stop_last=True,
        )
    roles = [
        Role("web", web_argv("127.0.0.1", port), env, (Port(port, "web", "choose another with --port"),))
    ]
    # Each queue group: JOB_CONCURRENCY thread-pool worker processes of JOB_THREADS threads (separate
    # workers, so recycling one to end a stuck job leaves the others serving); the process types of every
    # queue: one prefork worker of JOB_CONCURRENCY processes, when an installed type declares that pool.
    for name, queues in QUEUE_GROUPS.items():
        for n in range(1, settings.job_concurrency + 1):
            suffix = "" if n == 1 else f"-{n}"
            argv = worker_argv(queues, settings.job_threads, name + suffix, pool="threads")
            roles.append(Role(f"worker {queues}" + ("" if n == 1 else f" #{n}"), argv, env))
    if needs_process_pool():
        name, queues = PROCESS_GROUP
        argv = worker_argv(queues, settings.job_concurrency, name, pool="process")
        roles.append(Role(PROCESS_ROLE, argv, env))
    roles.append(Role("beat", beat_argv(instance), env, on_exit=beat_lock_releaser(settings.redis_url)))
    if flower_port is not None:
        auth, _source = _flower_auth(settings)
        ports = (Port(flower_port, "Flower", FLOWER_PORT_CHANGE),)
        roles.append(Role("flower", flower_argv(flower_port), {**env, **flower_env(auth)}, ports))
    return redis_role, roles


def needs_process_pool() -> bool:
    """Whether a registered job type declares ``pool="process"`` (then ``up`` runs a prefork worker)."""
    from questboard.app import registry

    return any(spec.pool == "process" for spec in registry().values())


def beat_lock_releaser(redis_url: str) -> Callable[[int], None]:
    """What up does when its beat died: release the leader lock it held (a restarted beat takes it now)."""
    host = socket.gethostname()

    def release(pid: int) -> None:
        if release_beat_lock(redis_url, host, pid):
            click.echo(f"questboard up: released the leader lock of the beat that died (pid {pid})", err=True)

    return release
