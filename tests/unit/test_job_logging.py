"""The job hooks' log lines: duration and peak memory of every attempt, whatever its outcome."""

from __future__ import annotations

import logging

import pytest

from shared import hooks
from workers import job_logging


def records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "questboard.jobs.metrics"]


def test_every_attempt_logs_duration_and_peak_memory(caplog):
    caplog.set_level(logging.INFO, logger="questboard.jobs.metrics")
    assert job_logging.measure_job in hooks.around_perform  # registered once, on import
    job_logging.register()
    assert hooks.around_perform.count(job_logging.measure_job) == 1

    with hooks.performing("job-1", "diagnostics.probe", 1):
        bytearray(5 * 1024 * 1024)  # a body that allocates
    with pytest.raises(ValueError):
        with hooks.performing("job-2", "diagnostics.probe", 2):
            raise ValueError("boom")

    ok, failed = records(caplog)
    assert (ok.job_id, ok.job_type, ok.attempt, ok.outcome) == ("job-1", "diagnostics.probe", 1, "returned")
    assert ok.duration_ms >= 0 and ok.peak_memory_kb > 1000 and ok.memory_growth_kb >= 0
    assert "job_id=job-1" in ok.getMessage() and "peak_memory_kb=" in ok.getMessage()
    assert (failed.job_id, failed.outcome) == ("job-2", "ValueError")


def test_enqueue_is_logged(caplog):
    caplog.set_level(logging.INFO, logger="questboard.jobs.metrics")
    hooks.run_before_enqueue({"id": "job-3", "type": "report.export", "queue": "low"})
    (record,) = records(caplog)
    assert (record.job_id, record.job_type, record.queue) == ("job-3", "report.export", "low")
