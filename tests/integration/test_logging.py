"""Structured logs: JSON lines with the job on every job line, and no secrets, from real processes."""

from __future__ import annotations

import io
import json
import logging

import pytest
import requests

from questboard.cli import web_argv
from questboard.testing import ManagedProcess, free_port, http_ok, wait_for
from shared import hooks
from shared.logging_setup import JobContextFilter, JsonFormatter, json_handler, redact

SECRETS = ["qb_SuperSecretApiToken123", "MagicLinkToken987654321", "hunter2", "s3cr3t-value"]


def json_lines(text: str) -> list[dict]:
    """The lines that are JSON objects (a Celery banner or Python warning at start-up are not)."""
    lines = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines


def capture(logger_name: str = "questboard.test") -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger(logger_name)
    logger.handlers = [json_handler(stream)]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_a_line_is_one_json_object_with_the_extra_fields():
    logger, stream = capture()
    try:
        raise ValueError("bad input")
    except ValueError:
        logger.exception("step failed", extra={"job_id": "j1", "job_type": "report.export", "attempt": 2})
    [line] = json_lines(stream.getvalue())
    assert line["msg"] == "step failed" and line["level"] == "error" and line["logger"] == "questboard.test"
    assert (line["job_id"], line["job_type"], line["attempt"]) == ("j1", "report.export", 2)
    assert line["ts"].endswith("Z") and "ValueError: bad input" in line["exc_info"]


def test_secrets_are_redacted_wherever_they_appear():
    logger, stream = capture()
    logger.info(
        "calling %s with Authorization: Bearer %s",
        "https://user:hunter2@api.example.com/v1?api_key=s3cr3t-value&page=2",
        "qb_SuperSecretApiToken123",
        extra={"headers": {"Authorization": "Basic abc", "Accept": "*/*"}, "password": "hunter2"},
    )
    logger.info("login link /login/MagicLinkToken987654321 for %s", "redis://:hunter2@redis:6379/0")
    text = stream.getvalue()
    assert not any(secret in text for secret in SECRETS), text
    first, second = json_lines(text)
    assert "https://user:***@api.example.com/v1?api_key=***&page=2" in first["msg"]
    assert first["headers"] == {"Authorization": "***", "Accept": "*/*"} and first["password"] == "***"
    assert second["msg"] == "login link /login/*** for redis://:***@redis:6379/0"
    assert redact("nothing secret here: /jobs/abc?limit=5") == "nothing secret here: /jobs/abc?limit=5"


def test_lines_logged_while_a_job_runs_carry_its_id_and_type():
    import workers.logging_signals  # noqa: F401  (registers the around_perform hook)

    logger, stream = capture()
    with hooks.performing("job-42", "diagnostics.probe", 1):
        logger.info("inside the body")
    logger.info("after the body")
    inside, after = json_lines(stream.getvalue())
    assert (inside["job_id"], inside["job_type"]) == ("job-42", "diagnostics.probe")
    assert "job_id" not in after


def test_celery_task_lines_get_the_job_from_the_task_id():
    record = logging.LogRecord(
        "celery.app.trace", logging.INFO, __file__, 1, "Task %(name)s[%(id)s] succeeded", None, None
    )
    record.args = {"name": "diagnostics.probe", "id": "abc123"}
    JobContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert (line["job_id"], line["job_type"]) == ("abc123", "diagnostics.probe")


def test_worker_writes_json_lines_with_the_job_on_each(client, alice, start_worker):
    worker = start_worker(queues="default", concurrency=1)
    job_id = client.post(
        "/api/jobs",
        json={"type": "diagnostics.probe", "params": {"fail_first_attempts": 1}},
        headers=alice.headers,
    ).get_json()["id"]
    wait_for(
        lambda: client.get(f"/api/jobs/{job_id}", headers=alice.headers).get_json()["status"] == "succeeded",
        30,
        what="the probe to succeed on its second attempt",
    )
    wait_for(lambda: "succeeded in" in worker.output(), 10, what="Celery's task-succeeded line")

    lines = json_lines(worker.output())
    about_job = [line for line in lines if job_id in json.dumps(line)]
    assert len(about_job) >= 4, worker.output()[-3000:]  # received, attempt failed, received, succeeded
    assert all(line.get("job_id") == job_id for line in about_job), about_job
    assert all(line.get("job_type") == "diagnostics.probe" for line in about_job), about_job
    failed = [line for line in about_job if line["msg"] == "job attempt failed"]
    assert failed and failed[0]["level"] == "warning" and failed[0]["attempt"] == 1
    assert any(line["logger"] == "celery.worker.consumer.connection" for line in lines)  # Celery's own lines


@pytest.fixture
def web_server(env, tmp_path):
    """``questboard web`` exactly as it runs in production (its gunicorn command line, access log on)."""
    port = free_port()
    proc = ManagedProcess("questboard-web", web_argv("127.0.0.1", port), env, tmp_path)
    proc.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_ok(base + "/healthz"), 30, what="questboard web")
        yield base, proc
    finally:
        proc.stop(timeout_s=10)


def test_web_access_lines_are_json_without_secrets(web_server):
    base, proc = web_server
    requests.get(f"{base}/login/MagicLinkToken987654321", timeout=5)
    requests.get(
        f"{base}/api/jobs?access_token=s3cr3t-value&limit=5",
        headers={"Authorization": "Bearer qb_SuperSecretApiToken123"},
        timeout=5,
    )
    wait_for(lambda: "/api/jobs" in proc.output(), 10, what="the access line")

    output = proc.output()
    assert not any(secret in output for secret in SECRETS), output
    access = [line for line in json_lines(output) if line.get("event") == "http_request"]
    login, api = (next(a for a in access if a["path"].startswith(p)) for p in ("/login/", "/api/jobs"))
    assert (login["method"], login["path"], login["status"]) == ("GET", "/login/***", 400)
    assert (api["path"], api["status"], api["query"]) == ("/api/jobs", 401, "access_token=***&limit=5")
    assert api["duration_ms"] >= 0 and api["logger"] == "gunicorn.access"
