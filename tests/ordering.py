"""Longest test files first, so that no slow file starts last on one xdist process while the others idle.

The suite runs with ``--dist loadfile``: a whole file goes to one process, and the wall time is bounded by
whichever process gets the slowest tail. Handing out the costliest files first (longest-processing-time
first) keeps the processes' loads even. A file's cost is its wall time in the last run on this checkout
(kept in pytest's cache), else the committed estimate in ``tests/file_durations.json``, else one second a
test. Tests keep their order inside a file; only the order of files changes, the same on every process.

Refresh the committed estimates from a run's JUnit XML: ``python -m tests.ordering report.xml``.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest

ESTIMATES = Path(__file__).with_name("file_durations.json")
CACHE_KEY = "questboard/file_durations"
UNKNOWN_PER_TEST_S = 1.0


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _known_costs(config: pytest.Config) -> dict[str, float]:
    costs: dict[str, float] = {}
    try:
        costs.update(json.loads(ESTIMATES.read_text()))
    except (OSError, ValueError):
        pass
    cache = getattr(config, "cache", None)
    if cache is not None:
        costs.update(cache.get(CACHE_KEY, {}) or {})
    return costs


def order_by_cost(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Reorder ``items`` in place: costliest file first, each file's tests in their collected order."""
    costs = _known_costs(config)
    by_file: dict[str, list[pytest.Item]] = defaultdict(list)
    for item in items:
        by_file[_file_of(item.nodeid)].append(item)

    def cost(path: str) -> float:
        return float(costs.get(path, UNKNOWN_PER_TEST_S * len(by_file[path])))

    ordered = sorted(by_file, key=lambda path: -cost(path))  # stable: ties keep the collected order
    items[:] = [item for path in ordered for item in by_file[path]]


class DurationRecorder:
    """Sums each file's setup, call and teardown times in this run and keeps them in pytest's cache."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.totals: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.totals[_file_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cache = getattr(self.config, "cache", None)
        if cache is None or not self.totals:
            return
        known = dict(cache.get(CACHE_KEY, {}) or {})
        known.update({path: round(total, 1) for path, total in self.totals.items()})
        cache.set(CACHE_KEY, known)


def durations_from_junit(path: str) -> dict[str, float]:
    """Per-file wall time (seconds) from a JUnit XML report written by ``pytest --junitxml``."""
    totals: dict[str, float] = defaultdict(float)
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "")
        parts = module.split(".")
        # classname is "tests.integration.test_api" or "tests.integration.test_api.TestClass"
        while parts and not parts[-1].startswith("test_"):
            parts.pop()
        if parts:
            totals["/".join(parts) + ".py"] += float(case.get("time", 0) or 0)
    return dict(totals)


if __name__ == "__main__":
    found = durations_from_junit(sys.argv[1])
    ESTIMATES.write_text(
        json.dumps({k: round(v, 1) for k, v in sorted(found.items())}, indent=1, sort_keys=True) + "\n"
    )
    for name, seconds in sorted(found.items(), key=lambda kv: -kv[1])[:25]:
        print(f"{seconds:8.1f}  {name}")
