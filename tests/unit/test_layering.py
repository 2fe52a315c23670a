"""The import layers, read from every module's source with ``ast`` (nothing is imported).

The sources are parsed in a fresh interpreter (``_scan``): CPython 3.11 keeps the recursion depth of its
AST conversion per interpreter, not per thread, so an ``ast.parse`` here could fail with "AST constructor
recursion depth mismatch" while a background thread left by another test (a Socket.IO listener, a
progress flusher) formats a traceback, which parses source lines for its carets.

    questboard   the CLI, the composition root (questboard.app), the test harness and pytest plugin
    web, workers the Flask side and the Celery side, side by side
    shared       the core: models, job service, lifecycle, settings

The rules (an import counts wherever it is written, inside functions too; only imports under
``if TYPE_CHECKING:`` are left out, as they never run):
- ``shared`` imports neither ``web``, ``workers`` nor ``questboard``, and none of Flask, Flask-SocketIO,
  Flask-WTF, Celery, kombu, RedBeat or Flower: whatever needs those is handed to it from above;
- ``workers`` never imports ``web``, and ``web`` never imports ``workers``: what one side needs of the
  other (the Celery app for the dispatcher, the job catalog) comes through the composition root;
- ``web`` and ``workers`` reach into ``questboard`` only through the composition root, ``questboard.app``;
- the platform never imports the application: ``shared.flagship``, ``web.flagship`` and
  ``workers.flagship`` (the flagship app: characters, exports, imports, search, webhooks) are imported
  only by each other and by the composition root, which registers the app's job types and endpoints.
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "shared": {
        "web",
        "workers",
        "questboard",
        "flask",
        "flask_socketio",
        "flask_wtf",
        "celery",
        "kombu",
        "redbeat",
        "flower",
    },
    "workers": {"web"},
    "web": {"workers"},
}
# Of questboard, the layers below may use the composition root only.
ROOT_MODULE = "questboard.app"
APPLICATION = ("shared.flagship", "web.flagship", "workers.flagship")
PLATFORM = ("questboard", "shared", "web", "workers")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) of every import that runs, however deep in the module it is written."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (item for child in node.orelse for item in _imports_of(child))
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST) -> Iterator[tuple[int, str]]:
    if isinstance(node, ast.Import):
        yield from ((node.lineno, alias.name) for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        yield node.lineno, node.module
        # ``from questboard import app`` names the module questboard.app
        yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    else:
        yield from _imports(node)


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _scan(sources: dict[str, str]) -> dict[str, list[tuple[int, str]]]:
    """Each source's imports (``_imports``), parsed in a child interpreter (see the module doc)."""
    done = subprocess.run(
        [sys.executable, __file__],
        input=json.dumps(sources),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return {
        name: [(line, module) for line, module in found] for name, found in json.loads(done.stdout).items()
    }


@functools.cache
def _imports_by_path(package: str) -> dict[Path, list[tuple[int, str]]]:
    """The imports of every module of ``package`` (one child interpreter per package and test process)."""
    paths = _modules(package)
    found = _scan({str(path): path.read_text() for path in paths})
    return {path: found[str(path)] for path in paths}


def _violations(package: str) -> list[str]:
    found: dict[tuple[str, int], str] = {}  # one per import statement
    for path, imports in _imports_by_path(package).items():
        for line, module in imports:
            top = module.split(".")[0]
            forbidden = top in FORBIDDEN[package]
            if forbidden or (top == "questboard" and module != "questboard" and not _within_root(module)):
                where = str(path.relative_to(ROOT))
                found.setdefault((where, line), f"{where}:{line} imports {module}")
    return [found[key] for key in sorted(found)]


def _within_root(module: str) -> bool:
    return module == ROOT_MODULE or module.startswith(ROOT_MODULE + ".")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports_only_what_lies_below_it(package: str) -> None:
    assert _modules(package), f"no modules found under {package}/"
    violations = _violations(package)
    assert not violations, f"{package}/ breaks the layering:\n" + "\n".join(violations)


def _in_application(module: str) -> bool:
    return any(module == app or module.startswith(app + ".") for app in APPLICATION)


def test_platform_never_imports_the_application() -> None:
    found = []
    for package in PLATFORM:
        for path, imports in _imports_by_path(package).items():
            where = path.relative_to(ROOT)
            dotted = ".".join(where.with_suffix("").parts)
            if _in_application(dotted) or dotted == ROOT_MODULE:
                continue
            found += sorted({f"{where}:{line}" for line, module in imports if _in_application(module)})
    assert all(_modules(app.replace(".", "/")) for app in APPLICATION)
    assert not found, "platform modules import the application:\n" + "\n".join(found)


def test_the_checker_sees_lazy_imports_and_skips_type_only_ones() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import celery\n"
        "def f():\n    from workers.jobs import REGISTRY\n"
        "class C:\n    def g(self):\n        if True:\n            import flask\n"
    )
    assert [module for _, module in _scan({"example": source})["example"]] == [
        "typing",
        "typing.TYPE_CHECKING",
        "workers.jobs",
        "workers.jobs.REGISTRY",
        "flask",
    ]


if __name__ == "__main__":  # the child of ``_scan``: {name: source} in, {name: [[line, module], ...]} out
    json.dump(
        {
            name: list(_imports(ast.parse(source, filename=name)))
            for name, source in json.load(sys.stdin).items()
        },
        sys.stdout,
    )
