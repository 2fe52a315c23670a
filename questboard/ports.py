"""The TCP ports ``questboard up`` binds, checked before anything starts (and before each restart)."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Port:
    """A TCP port a role listens on, and how the operator changes it."""

    number: int
    what: str  # "web", "Flower", "private Redis"
    change: str  # the flag or variable that picks another one
    host: str = "127.0.0.1"

    def taken(self) -> bool:
        """True if something already listens here (bound as the servers bind: with SO_REUSEADDR)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.number))
            except OSError:
                return True
        return False

    def problem(self) -> str:
        """What the operator reads when the port is taken."""
        return f"port {self.number} ({self.what}) is already in use on {self.host}: {self.change}"


def port_problems(ports: Iterable[Port]) -> list[str]:
    """What stands in the way of binding every one of ``ports``: each taken one, and any given twice."""
    problems: list[str] = []
    seen: dict[int, str] = {}
    for port in ports:
        if port.number in seen:
            problems.append(
                f"port {port.number} is wanted by both {seen[port.number]} and {port.what}: {port.change}"
            )
            continue
        seen[port.number] = port.what
        if port.taken():
            problems.append(port.problem())
    return problems
