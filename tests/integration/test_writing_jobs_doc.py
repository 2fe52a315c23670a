"""docs/writing-jobs.md, followed literally: its files into an empty folder, its test run with pytest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from questboard.testing import REPO_ROOT

DOC = REPO_ROOT / "docs" / "writing-jobs.md"
FILE_BLOCK = re.compile(r"<!-- file: (?P<name>[\w.]+) -->\n```python\n(?P<code>.*?)```", re.S)


def test_the_walkthrough_works_as_written(tmp_path: Path):
    files = {m["name"]: m["code"] for m in FILE_BLOCK.finditer(DOC.read_text())}
    assert set(files) == {"greet_job.py", "test_greet_job.py", "team_job.py", "test_team_job.py"}
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUESTBOARD_", "PYTEST_"))}
    env.update(
        QUESTBOARD_JOB_MODULES="greet_job,team_job",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_greet_job.py",
            "test_team_job.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "4 passed" in result.stdout
