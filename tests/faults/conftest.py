"""The fault suite runs its partitions on namespaced hosts when it can, and says which mode it is in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.netns import namespaces_unavailable_reason

_REASON = namespaces_unavailable_reason()


def pytest_report_header(config: pytest.Config) -> str:
    if _REASON is None:
        return "faults: hosts are network namespaces (ip netns, veth, bridges)"
    return f"faults: network namespaces unavailable ({_REASON}); falling back to a loopback TCP proxy"


def namespaces_reason() -> str | None:
    """Why namespaced hosts cannot be made here (None: they can)."""
    return _REASON


@pytest.fixture
def hosts_for(tmp_path: Path) -> Iterator:
    """``hosts_for(database_url)`` -> a started ``Hosts``; everything it made is removed afterwards."""
    if _REASON is not None:
        pytest.skip(f"network namespaces unavailable ({_REASON}); the loopback-proxy tests cover this")
    from tests.faults.hosts import Hosts

    made = []

    def make(database_url: str) -> Hosts:
        hosts = Hosts(tmp_path, database_url)
        made.append(hosts)
        return hosts.start()

    yield make
    for hosts in made:
        hosts.close()
