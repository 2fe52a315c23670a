"""shared.webserver: how many web processes, and a clear error for a WEB_CONCURRENCY that is not a count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.webserver import web_concurrency

QUESTBOARD = str(Path(sys.executable).parent / "questboard")


def test_web_concurrency_defaults_to_one_process_per_core():
    cores = os.cpu_count() or 1
    assert web_concurrency({}) == cores
    assert web_concurrency({"WEB_CONCURRENCY": ""}) == cores  # compose passes it empty: one per core
    assert web_concurrency({"WEB_CONCURRENCY": "3"}) == 3


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_web_concurrency_that_is_not_a_count_is_refused(value):
    with pytest.raises(ValueError, match="WEB_CONCURRENCY"):
        web_concurrency({"WEB_CONCURRENCY": value})


def test_questboard_web_says_what_is_wrong_with_web_concurrency(tmp_path):
    env = {**os.environ, "WEB_CONCURRENCY": "zero", "QUESTBOARD_INSTANCE_DIR": str(tmp_path)}
    result = subprocess.run(
        [QUESTBOARD, "web", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "WEB_CONCURRENCY must be a whole number" in result.stderr
