"""The namespaced hosts leave nothing behind: their own namespaces go on close, a killed run's on the next."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.faults.conftest import namespaces_reason
from tests.faults.netns import PREFIX, Network

pytestmark = pytest.mark.skipif(namespaces_reason() is not None, reason=f"{namespaces_reason()}")


def _namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in listed.splitlines() if line.strip()}


def test_a_network_removes_a_killed_runs_namespaces_and_all_of_its_own():
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that is no longer alive: the "killed earlier run"
    stale = f"{PREFIX}{gone.pid}-w1"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    net = Network(["a", "b"])
    try:
        assert stale not in _namespaces()
        mine = {n for n in _namespaces() if n.startswith(f"{PREFIX}{os.getpid()}-")}
        assert mine == {net.ns("a"), net.ns("b"), net.switch}
        address = net.address("a", "redis")
        server = net.run_in("a", lambda: socket.create_server((address, 7000)))
        client = net.run_in("b", lambda: socket.create_connection((address, 7000), timeout=3))
        peer, _ = server.accept()
        net.cut("b", "redis")
        client.sendall(b"during the cut")
        peer.settimeout(1.5)
        with pytest.raises(TimeoutError):
            peer.recv(100)  # nothing arrives, and nothing is closed
        net.heal("b", "redis")
        peer.settimeout(10)
        assert peer.recv(100) == b"during the cut"  # retransmitted once the link is back
        for sock in (client, peer, server):
            sock.close()
    finally:
        net.close()
    assert not {n for n in _namespaces() if n.startswith(f"{PREFIX}{os.getpid()}-")}
