"""docker-compose.yml: valid, and laid out as operations needs it (no Docker engine here: config only)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "REDIS_PASSWORD": "redis-pw",
    "POSTGRES_PASSWORD": "pg-pw",
    "SECRET_KEY": "secret-key",
    "FLOWER_BASIC_AUTH": "ops:flower-pw",
}


def compose(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("QUESTBOARD_")}
    return subprocess.run(
        [binary, "-f", "docker-compose.yml", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def services() -> dict:
    result = compose("config", **SECRETS)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_compose_file_is_valid():
    result = compose("config", "-q", **SECRETS)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(missing):
    result = compose("config", "-q", **{k: v for k, v in SECRETS.items() if k != missing})
    assert result.returncode != 0 and f"set {missing}" in result.stderr


def test_only_web_and_flower_are_published(services):
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"web", "flower"}
    assert [p["published"] for p in services["web"]["ports"]] in (["5000"], [5000])


def test_redis_is_durable_and_never_evicts(services):
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--requirepass") + 1] == "redis-pw"


def test_roles_start_after_the_migration_and_each_has_a_healthcheck(services):
    assert services["migrate"]["command"] == ["questboard", "db", "upgrade"]
    for name in ("web", "worker-critical", "worker-default", "beat", "flower"):
        svc = services[name]
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert svc["healthcheck"]["test"], name
        assert svc["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://"), name
    for name in ("redis", "postgres"):
        assert services[name]["healthcheck"]["test"], name


def test_roles_run_the_questboard_commands(services):
    assert services["web"]["command"][:2] == ["questboard", "web"]
    commands = {name: svc.get("command", []) for name, svc in services.items()}
    workers = {n: c for n, c in commands.items() if c[:2] == ["questboard", "worker"]}
    threads = {n: c for n, c in workers.items() if c[c.index("--pool") + 1] == "threads"}
    assert {tuple(c[c.index("--queues") + 1].split(",")) for c in threads.values()} == {
        ("critical", "high"),
        ("default", "low"),
    }
    # The prefork worker for pool="process" types, of every queue (behind the "process" profile).
    process = workers["worker-process"]
    assert process[process.index("--pool") + 1] == "process"
    assert process[process.index("--queues") + 1] == "critical,high,default,low"
    assert services["worker-process"]["profiles"] == ["process"]
    assert set(workers) == {*threads, "worker-process"}
    assert [n for n, c in commands.items() if c[:2] == ["questboard", "beat"]] == ["beat"]
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == "ops:flower-pw"
    assert services["flower"]["command"][:2] == ["questboard", "flower"]


def test_web_scales_its_processes_with_web_concurrency(services):
    web = services["web"]
    assert web["environment"]["WEB_CONCURRENCY"] == ""  # unset: shared.webserver runs one per core
    assert web["environment"]["REDIS_URL"] == services["worker-default"]["environment"]["REDIS_URL"]
    assert int(web["ulimits"]["nofile"]) >= 10_000  # every held websocket is a file descriptor
    four = yaml.safe_load(compose("config", WEB_CONCURRENCY="4", **SECRETS).stdout)["services"]["web"]
    assert four["environment"]["WEB_CONCURRENCY"] == "4"
