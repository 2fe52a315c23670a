"""/metrics (Prometheus text format) on SQLite and PostgreSQL; the alert rules; the console's alert banner."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from questboard.testing import free_port
from tests.integration.test_admin_support import (
    PROBE,
    csrf_token,
    log_in,
    run_and_fail,
    run_and_succeed,
    submit,
)
from web import metrics

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return path


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_need_an_operator_token(client, alice, admin):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=alice.headers).status_code == 403
    response = client.get("/metrics", headers=admin.headers)
    assert response.status_code == 200 and response.content_type.startswith("text/plain; version=0.0.4")


def test_metrics_report_queues_runs_durations_and_dead_letters(client, alice, admin, settings):
    submit(client, alice, queue="low")
    submit(client, alice, queue="low")
    run_and_succeed(settings, submit(client, alice))
    run_and_fail(settings, submit(client, alice))
    retried = submit(client, alice)
    run_and_fail(settings, retried)
    client.post(f"/api/admin/failed/{retried}/retry", headers=admin.headers)
    run_and_succeed(settings, retried)  # its second run

    text = client.get("/metrics", headers=admin.headers).get_data(as_text=True)
    got = samples(text)

    assert got[("questboard_redis_up", ())] == 1
    assert got[("questboard_queue_depth", (("queue", "low"),))] == 2
    assert got[("questboard_queue_latency_seconds", (("queue", "low"),))] > 0
    assert got[("questboard_queue_paused", (("queue", "low"),))] == 0
    assert got[("questboard_queue_workers", (("queue", "default"),))] == 0
    assert got[("questboard_workers_active", ())] == 0
    assert got[("questboard_dead_letter_jobs", ())] == 1
    assert got[("questboard_jobs", (("status", "queued"), ("type", PROBE)))] == 2
    runs = {
        o: got[("questboard_job_runs_total", (("outcome", o), ("type", PROBE)))]
        for o in ("succeeded", "failed")
    }
    assert runs == {"succeeded": 2, "failed": 2}
    assert got[("questboard_job_retries_total", (("type", PROBE),))] == 1
    count = got[("questboard_job_duration_seconds_count", (("type", PROBE),))]
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in got.items()
        if name == "questboard_job_duration_seconds_bucket"
    )
    assert count == 4 and buckets[-1] == (float("inf"), 4)
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:], strict=False))  # cumulative
    assert buckets[0][1] == 4  # these runs took well under 0.1 s
    assert got[("questboard_job_duration_seconds_sum", (("type", PROBE),))] >= 0

    lint = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_metrics_answer_from_the_database_while_redis_is_down(alice, admin, settings):
    from web import create_app

    client = create_app(settings, TESTING=True).test_client()
    submit(client, alice, queue="low")
    run_and_fail(settings, submit(client, alice))
    down = create_app(
        settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}), TESTING=True
    )

    response = down.test_client().get("/metrics", headers=admin.headers)

    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    text = response.get_data(as_text=True)
    got = samples(text)
    assert got[("questboard_redis_up", ())] == 0
    assert got[("questboard_jobs", (("status", "queued"), ("type", PROBE)))] == 1
    assert got[("questboard_dead_letter_jobs", ())] == 1
    assert got[("questboard_queue_latency_seconds", (("queue", "low"),))] > 0
    # What only Redis knows is left out, not reported as zero.
    assert not [name for name, _ in got if name in ("questboard_queue_depth", "questboard_workers_active")]
    lint = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_alert_rules_are_valid_and_their_unit_tests_pass():
    tool = promtool()
    check = subprocess.run(
        [tool, "check", "rules", "alerts.yml"], cwd=RULES_DIR, capture_output=True, text=True
    )
    assert check.returncode == 0 and "SUCCESS: 5 rules found" in check.stdout, check.stdout + check.stderr
    test = subprocess.run(
        [tool, "test", "rules", "alerts.test.yml"], cwd=RULES_DIR, capture_output=True, text=True
    )
    assert test.returncode == 0, test.stdout + test.stderr


def test_alert_rules_use_the_console_thresholds():
    rules = {
        rule["alert"]: rule["expr"]
        for group in yaml.safe_load((RULES_DIR / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    assert set(rules) == {
        "QueueBacklog",
        "QueueOldestJobTooOld",
        "QueueWithoutWorkers",
        "JobFailureRateHigh",
        "RedisDown",
    }
    assert rules["RedisDown"] == "questboard_redis_up == 0"
    assert re.search(rf"questboard_queue_depth > {metrics.BACKLOG_DEPTH}\b", rules["QueueBacklog"])
    assert re.search(
        rf"questboard_queue_latency_seconds > {metrics.OLDEST_JOB_AGE_S}\b", rules["QueueOldestJobTooOld"]
    )
    assert "questboard_queue_workers == 0" in rules["QueueWithoutWorkers"]
    assert "questboard_queue_paused == 1" in rules["QueueWithoutWorkers"]
    failure = rules["JobFailureRateHigh"]
    assert f") > {metrics.FAILURE_RATE}" in failure and f">= {metrics.FAILURE_MIN_RUNS}" in failure
    assert failure.count(f"[{metrics.FAILURE_WINDOW_S // 60}m]") == 3


def test_alert_conditions_match_the_rules_at_their_edges():
    queue = {"name": "low", "depth": 100, "latency_seconds": 300.0, "paused": False, "workers": ["w@h"]}
    assert metrics.current_alerts([queue], {}) == []
    over = {**queue, "depth": 101, "latency_seconds": 300.5, "workers": []}
    assert [a.name for a in metrics.current_alerts([over], {})] == [
        "QueueBacklog",
        "QueueOldestJobTooOld",
        "QueueWithoutWorkers",
    ]
    assert metrics.current_alerts([{**over, "depth": 0, "latency_seconds": 0, "paused": True}], {}) == []
    assert metrics.current_alerts([], {"t": {"failed": 4}}) == []  # too few runs to judge
    assert metrics.current_alerts([], {"t": {"failed": 1, "succeeded": 3}}) == []  # exactly 25%
    [alert] = metrics.current_alerts([], {"t": {"failed": 2, "succeeded": 3, "canceled": 9}})
    assert (alert.name, alert.subject) == ("JobFailureRateHigh", "t")


def test_console_banner_shows_the_alerts_that_hold_now(
    client, accounts, admin, alice, settings, redis_server
):
    redis_server.client().lpush("low", *["{}"] * (metrics.BACKLOG_DEPTH + 1))  # a flood of raw messages
    for _ in range(metrics.FAILURE_MIN_RUNS):
        run_and_fail(settings, submit(client, alice))
    log_in(client, accounts, admin.user)
    client.post("/admin/queues/high/pause", data={"csrf_token": csrf_token(client, "/admin")})

    html = client.get("/admin/panel").get_data(as_text=True)
    shown = set(re.findall(r'data-alert="(\w+)" data-subject="([\w.]+)"', html))

    assert shown == {
        ("QueueBacklog", "low"),
        ("QueueWithoutWorkers", "critical"),
        ("QueueWithoutWorkers", "default"),
        ("QueueWithoutWorkers", "low"),  # not "high": paused on purpose
        ("JobFailureRateHigh", PROBE),
    }
