"""/healthz and /readyz, with a private Redis that the test stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from questboard.testing import RedisServer, questboard_env, wait_worker_ready, worker_process
from shared.settings import Settings


def test_healthz_is_ok_without_auth(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}


def test_readyz_needs_a_worker(client, start_worker):
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["failed"] == ["workers"]
    start_worker()
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.get_json()


def test_readyz_names_redis_when_it_is_down(tmp_path: Path, db_url: str):
    from web import create_app

    own = RedisServer(tmp_path / "redis", appendonly=False).start()
    settings = Settings(redis_url=own.url, database_url=db_url, instance_dir=tmp_path / "i", secret_key="x")
    worker = worker_process(questboard_env(own.url, db_url, tmp_path / "i"), tmp_path)
    worker.start()
    try:
        wait_worker_ready(worker, own.url)
        client = create_app(settings, TESTING=True).test_client()
        assert client.get("/readyz").status_code == 200
        own.stop()
        resp = client.get("/readyz")
        assert resp.status_code == 503 and "redis" in resp.get_json()["failed"]
        assert client.get("/healthz").status_code == 200
    finally:
        worker.stop(timeout_s=5)
        own.stop()


def test_readyz_names_the_database_when_it_is_down(tmp_path: Path, redis_url: str):
    from web import create_app

    settings = Settings(
        redis_url=redis_url,
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
        instance_dir=tmp_path / "i",
        secret_key="x",
    )
    resp = create_app(settings, TESTING=True).test_client().get("/readyz")
    assert resp.status_code == 503 and "database" in resp.get_json()["failed"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_answer_json(client, path):
    assert client.get(path).is_json
