"""README.md's set-up and tour, followed literally in a fresh clone of this branch.

What is executed is the README's own sh blocks (first terminal: ``scripts/up``; second terminal: the
tour's blocks, as one shell session so TOKEN/JOB carry over), then its Python Socket.IO snippet, then the
tour's CLI once more from another directory. Substituted, because they cannot be run as written here:
the port (``127.0.0.1:5000`` -> a free port, also given to ``scripts/up`` as ``--port``; Flower gets a
free ``--flower-port``), the snippet's placeholder ``TOKEN, JOB`` line (set to the tour's values), and
the virtualenv: instead of ``pip install`` (minutes), the clone's ``.venv`` is a bare venv whose
site-packages point at this checkout's installed dependencies, with scripts/up's install stamp written,
so ``scripts/up`` runs as written and goes straight to ``questboard up``. The clone's code is what runs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import requests

from questboard.testing import REPO_ROOT, free_port, http_ok, wait_for

MARK = "@@tour-command@@"


def sh_blocks(text: str, lang: str = "sh") -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def tour_section(readme: str) -> str:
    start = readme.index("## A short tour")
    return readme[start : readme.index("\n## ", start + 5)]


def make_venv(clone: Path) -> None:
    """A venv in the clone that imports the clone's code and this checkout's installed dependencies."""
    venv = clone / ".venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)  # type: ignore[attr-defined]
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "questboard_tour.pth").write_text(f"{clone}\n{sysconfig.get_paths()['purelib']}\n")
    python = venv / "bin" / "python"
    script = venv / "bin" / "questboard"
    script.write_text(f"#!{python}\nimport sys\nfrom questboard.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    pip = venv / "bin" / "pip"  # scripts/up checks that .venv has a pip; this test never installs
    pip.write_text("#!/bin/sh\necho 'the README tour test does not install' >&2\nexit 1\n")
    pip.chmod(0o755)
    os.utime(clone / "pyproject.toml", (1_000_000_000, 1_000_000_000))
    (venv / ".questboard-installed").write_text(".[client]")  # what scripts/up installs


def segments(stdout: str) -> list[tuple[str, str]]:
    """(command, its stdout) for every top-level command of the tour session."""
    parts = stdout.split(MARK + " ")[1:]
    return [(p.split("\n", 1)[0], p.split("\n", 1)[1] if "\n" in p else "") for p in parts]


def test_the_readme_tour_from_a_fresh_clone(tmp_path):
    readme_text = (REPO_ROOT / "README.md").read_text()
    clone = tmp_path / "questboard"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True, timeout=60)
    make_venv(clone)
    readme = (clone / "README.md").read_text()
    assert readme == readme_text, "commit the README before running this test"
    port, flower_port = free_port(), free_port()
    host = f"127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QUESTBOARD_", "CELERY_", "PYTEST", "VIRTUAL_ENV"))
        and k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "FLOWER_BASIC_AUTH", "PYTHONPATH")
    }
    env.update(
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # nothing answers there: up starts its own
        QUESTBOARD_BASE_URL=f"http://{host}",
        JOB_CONCURRENCY="1",
    )

    # First terminal: the set-up block's `scripts/up`.
    up_line = next(line for line in sh_blocks(readme)[0].splitlines() if line.startswith("scripts/up"))
    up_cmd = up_line.split("#")[0].strip() + f" --port {port} --flower-port {flower_port}"
    up_log = tmp_path / "up.log"
    with open(up_log, "wb") as log:
        up = subprocess.Popen(
            ["bash", "-c", up_cmd],
            cwd=clone,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: http_ok(f"http://{host}/readyz") or (up.poll() is not None and _fail(up_log)),
            45,
            0.2,
            what="scripts/up",
        )
        up_out = up_log.read_text()
        assert "Questboard is up" in up_out and f"http://{host}" in up_out, up_out
        assert "Redis:" in up_out and "private redis-server started by questboard up" in up_out, up_out

        # Second terminal, from the repository root: the tour's sh blocks, in order, as one session.
        tour = "\n".join(sh_blocks(tour_section(readme))).replace("127.0.0.1:5000", host)
        session = (
            f'trap \'echo; echo "{MARK} $BASH_COMMAND"\' DEBUG\n{tour}\necho; echo "{MARK} end $TOKEN $JOB"\n'
        )
        ran = subprocess.run(
            ["bash", "-c", session], cwd=clone, env=env, capture_output=True, text=True, timeout=60
        )
        assert ran.returncode == 0, (ran.stdout[-2000:], ran.stderr[-2000:])
        steps = segments(ran.stdout)
        token, job_id = steps[-1][0].split()[1:3]
        database = f"sqlite:///{clone / 'instance' / 'questboard.sqlite3'}"
        assert database in ran.stderr and "NEW" not in ran.stderr, ran.stderr  # the database `up` made
        link = next(out.strip() for cmd, out in steps if "login-link" in cmd)
        assert requests.get(link, allow_redirects=False, timeout=10).status_code == 302, link

        outputs = {cmd: out for cmd, out in steps}
        types = json.loads(next(out for cmd, out in outputs.items() if cmd.endswith("$API/job-types")))
        assert "character.generate" in {t["type"] for t in types}
        cancel = json.loads(next(out for cmd, out in outputs.items() if cmd.endswith("/cancel")))
        assert cancel.get("id") == job_id, cancel  # 202 with the job (a 409 is {"error": ...}): not finished
        api = f"http://{host}/api"
        auth = {"Authorization": f"Bearer {token}"}
        wait_for(
            lambda: (
                requests.get(f"{api}/jobs/{job_id}", headers=auth, timeout=5).json()["status"] == "canceled"
            ),
            10,
            what="the character job canceled",
        )

        # The Python Socket.IO snippet, in the .venv scripts/up made.
        snippet = sh_blocks(tour_section(readme), "python")[0].replace("127.0.0.1:5000", host)
        snippet = re.sub(r"^TOKEN, JOB = .*$", f"TOKEN, JOB = {token!r}, {job_id!r}", snippet, flags=re.M)
        (tmp_path / "live.py").write_text(snippet)
        live = subprocess.run(
            [".venv/bin/python", str(tmp_path / "live.py")],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert live.returncode == 0 and "Unexpected connection error" not in live.stderr, live.stderr[-2000:]
        assert live.stdout.startswith("canceled "), live.stdout

        # The same CLI from another directory finds the same instance, so its login link works too.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        cli = next(line for line in sh_blocks(tour_section(readme))[0].splitlines() if "login-link" in line)
        cli = (
            cli.split("#")[0]
            .strip()
            .replace(".venv/bin/questboard", str(clone / ".venv" / "bin" / "questboard"))
        )
        other = subprocess.run(
            ["bash", "-c", cli], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=30
        )
        assert other.returncode == 0, other.stderr
        assert database in other.stderr and "NEW" not in other.stderr, other.stderr
        assert not (elsewhere / "instance").exists()
        link = other.stdout.strip().splitlines()[-1]
        assert requests.get(link, allow_redirects=False, timeout=10).status_code == 302, link
        # No error line or traceback in up's output (recurring runs included).
        bad = [
            x for x in up_log.read_text().splitlines() if '"level": "error"' in x or x.startswith("Traceback")
        ]
        assert not bad, bad[:5]
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)  # Ctrl+C, as the README says
            try:
                up.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(up.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _fail(log: Path) -> bool:
    raise RuntimeError(f"scripts/up exited:\n{log.read_text()[-3000:]}")
