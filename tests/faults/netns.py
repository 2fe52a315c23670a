"""Hosts as network namespaces, for the fault tests.

A ``Network`` makes one namespace that holds two bridges — the *Redis network* (10.213.1.0/24) and the
*database network* (10.213.2.0/24) — and one namespace per host, joined to either network or both by
veth pairs whose other end is a port of that network's bridge. Nothing is routed anywhere else: the
addresses exist only inside these namespaces. Cutting a host from a network takes its bridge port down,
so its packets stop without anything being closed (no RST, no FIN: the TCP peers see silence), and
healing brings the port back. ``netem`` delay and loss are added when the kernel has that qdisc.

Every namespace a network makes is named ``qbf<pid>-<host>``; ``close()`` deletes them all (and with them
every veth), and creating a network first deletes those left behind by a test run that was killed (a
prefix whose pid is no longer alive). Processes run in a host with ``ip netns exec``; the test process
reaches a host (its loopback, where the web listens) from a thread switched into that namespace.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from shared.processes import pid_alive

PREFIX = "qbf"
NETS = {"redis": "10.213.1", "db": "10.213.2"}
_CLONE_NEWNET = 0x40000000
_T = TypeVar("_T")


class NamespacesUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no iproute2, or the kernel refuses)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


def namespaces_unavailable_reason() -> str | None:
    """None when ``ip netns`` works here, otherwise why not (the fallback's message).

    ``QUESTBOARD_FAULTS_LOOPBACK=1`` forces the fallback (to run the loopback-proxy tests anywhere).
    """
    if os.environ.get("QUESTBOARD_FAULTS_LOOPBACK"):
        return "QUESTBOARD_FAULTS_LOOPBACK is set"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if os.geteuid() != 0:
        return "not running as root"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def netem_unavailable_reason() -> str | None:
    """None when this kernel has the ``netem`` qdisc, otherwise why not."""
    net = Network(["probe"])
    try:
        net.impair("probe", "redis", delay_ms=1, loss_pct=0)
        return None
    except subprocess.CalledProcessError as exc:
        return f"this kernel has no netem qdisc (`tc qdisc add … netem`: {exc.stderr.strip()})"
    finally:
        net.close()


def remove_stale() -> list[str]:
    """Delete the namespaces of earlier runs whose process is gone; returns their names."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.fullmatch(rf"{PREFIX}(\d+)-[\w]+", name)
        if match and not pid_alive(int(match.group(1))):
            _ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


class Network:
    """Hosts (namespaces) on the Redis and database networks; see the module docstring.

    ``hosts`` maps a host name to the networks it joins (a list of names means both networks).
    """

    def __init__(self, hosts: dict[str, tuple[str, ...]] | list[str]) -> None:
        if isinstance(hosts, list):
            hosts = {name: tuple(NETS) for name in hosts}
        remove_stale()
        self.tag = f"{PREFIX}{os.getpid()}"
        self._made: list[str] = []
        self.addresses: dict[tuple[str, str], str] = {}
        self._ports: dict[tuple[str, str], str] = {}
        try:
            self.switch = self._add_ns("net")
            for net in NETS:
                _ip("-n", self.switch, "link", "add", f"br-{net}", "type", "bridge")
                _ip("-n", self.switch, "link", "set", f"br-{net}", "up")
            for index, (host, nets) in enumerate(hosts.items(), start=2):
                ns = self._add_ns(host)
                _ip("-n", ns, "link", "set", "lo", "up")
                for net in nets:
                    self._join(host, ns, net, index)
        except BaseException:
            self.close()
            raise

    def ns(self, host: str) -> str:
        """The namespace name of ``host``."""
        return f"{self.tag}-{host}"

    def address(self, host: str, net: str) -> str:
        """``host``'s address on network ``net``."""
        return self.addresses[(host, net)]

    def _add_ns(self, host: str) -> str:
        name = self.ns(host)
        made = _ip("netns", "add", name, check=False)
        if made.returncode != 0:
            raise NamespacesUnavailable(made.stderr.strip())
        self._made.append(name)
        return name

    def _join(self, host: str, ns: str, net: str, index: int) -> None:
        port = f"p{index}-{net}"
        _ip("link", "add", "name", f"eth-{net}", "netns", ns, "type", "veth", "peer", "name", port,
            "netns", self.switch)  # fmt: skip
        _ip("-n", self.switch, "link", "set", port, "master", f"br-{net}", "up")
        address = f"{NETS[net]}.{index}"
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", f"eth-{net}")
        _ip("-n", ns, "link", "set", f"eth-{net}", "up")
        self.addresses[(host, net)] = address
        self._ports[(host, net)] = port

    def cut(self, host: str, net: str) -> None:
        """``host`` stops reaching network ``net``: its bridge port goes down, nothing is closed."""
        _ip("-n", self.switch, "link", "set", self._ports[(host, net)], "down")

    def heal(self, host: str, net: str) -> None:
        """Undo ``cut``."""
        _ip("-n", self.switch, "link", "set", self._ports[(host, net)], "up")

    def impair(self, host: str, net: str, delay_ms: int, loss_pct: float) -> None:
        """netem delay and loss on ``host``'s link to ``net``, both directions."""
        spec = ["netem", "delay", f"{delay_ms}ms", "loss", f"{loss_pct}%"]
        subprocess.run(["ip", "netns", "exec", self.ns(host), "tc", "qdisc", "replace", "dev",
                        f"eth-{net}", "root", *spec], capture_output=True, text=True, check=True)  # fmt: skip
        subprocess.run(["ip", "netns", "exec", self.switch, "tc", "qdisc", "replace", "dev",
                        self._ports[(host, net)], "root", *spec], capture_output=True, text=True,
                       check=True)  # fmt: skip

    def unimpair(self, host: str, net: str) -> None:
        """Remove what ``impair`` added."""
        for ns, dev in ((self.ns(host), f"eth-{net}"), (self.switch, self._ports[(host, net)])):
            subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"],
                           capture_output=True, check=False)  # fmt: skip

    def wrap(self, host: str, argv: list[str]) -> list[str]:
        """``argv`` run inside ``host``'s namespace."""
        return [shutil.which("ip") or "/usr/sbin/ip", "netns", "exec", self.ns(host), *argv]

    def run_in(self, host: str, call: Callable[[], _T], timeout_s: float = 30.0) -> _T:
        """``call()`` on a thread switched into ``host``'s namespace (sockets it opens live there)."""
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                fd = os.open(f"/run/netns/{self.ns(host)}", os.O_RDONLY)
                try:
                    if ctypes.CDLL(None, use_errno=True).setns(fd, _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed")
                finally:
                    os.close(fd)
                box["value"] = call()
            except BaseException as exc:  # handed to the caller
                box["error"] = exc

        thread = threading.Thread(target=target, name=f"in-{host}", daemon=True)
        thread.start()
        thread.join(timeout_s)
        if thread.is_alive():
            raise TimeoutError(f"call in {host} still running after {timeout_s} s")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def close(self) -> None:
        """Delete every namespace this network made (their veths and bridges go with them)."""
        for name in reversed(self._made):
            _ip("netns", "del", name, check=False)
        self._made.clear()
