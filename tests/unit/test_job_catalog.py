"""The job catalog cannot go stale: docs/jobs.md must be what the registry renders now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from questboard.app import job_types
from questboard.testing import REPO_ROOT
from workers.catalog import render_markdown


def test_docs_jobs_md_matches_the_registry():
    expected = render_markdown(job_types(None))
    actual = (REPO_ROOT / "docs" / "jobs.md").read_text()
    assert actual == expected, "docs/jobs.md is stale: run `questboard jobs types --markdown > docs/jobs.md`"


def test_catalog_lists_every_type_with_its_policies():
    text = render_markdown(job_types(None))
    for name, spec in job_types(None).items():
        assert f"## `{name}`" in text and spec.description in text
    assert "rate limit: 60 per minute" in text  # mail.deliver
    # No built-in type declares a concurrency limit (batch imports are workflows): the test types do.
    assert "at most 1 running per key" in render_markdown(job_types("tests.reliability.jobtypes"))


def test_cli_prints_the_catalog(tmp_path):
    exe = str(Path(sys.executable).parent / "questboard")
    result = subprocess.run(
        [exe, "jobs", "types"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "QUESTBOARD_INSTANCE_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "diagnostics.probe" in result.stdout and "queue `default`" in result.stdout


def test_api_job_types_show_the_same_policies(client, admin):
    probe = {t["type"]: t for t in client.get("/api/job-types", headers=admin.headers).get_json()}[
        "mail.deliver"
    ]
    assert probe["rate_limit"] == "60 per minute" and probe["retry"]["max_attempts"] == 5 and probe["unique"]
    assert probe["internal"] is True and probe["time_limit_seconds"] == 60
