"""Hold many idle connections to a web server from one process (asyncio, raw sockets).

    python -m tests.idle_clients BASE_URL [--anonymous N] [--authenticated N --token T] [--slow N]

- ``anonymous``: websockets that complete the Engine.IO handshake and never connect to ``/jobs``;
- ``authenticated``: websockets connected to ``/jobs`` with ``--token``, idle (they answer Engine.IO pings);
- ``slow``: HTTP requests whose header lines arrive one every ``--drip-s`` and never end.

Every connection the server closes is opened again, so the counts are held for as long as this runs.
Every ``--report-s`` one JSON line goes to stdout: ``{"open": {kind: n}, "lifetimes": {kind: [s, ...]},
"failures": {kind: n}}`` — lifetimes (seconds from open to the server's close) of the connections closed
since the previous line. Used by tests/integration/test_web_capacity.py and benchmarks/p9_connections.py.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

KINDS = ("anonymous", "authenticated", "slow")
RETRY_S = 0.2  # after a refused connect (a full backlog), before trying again


class Load:
    def __init__(self, host: str, port: int, token: str | None, drip_s: float) -> None:
        self.host, self.port, self.token, self.drip_s = host, port, token, drip_s
        self.open: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.lifetimes: dict[str, list[float]] = {kind: [] for kind in KINDS}

    async def hold(self, kind: str) -> None:
        """One connection of ``kind``, opened again whenever it ends."""
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.failures[kind] += 1
                await asyncio.sleep(RETRY_S)
                continue
            opened = time.monotonic()
            held = False
            try:
                if kind == "slow":
                    held = await self._drip(reader, writer)
                else:
                    held = await self._websocket(reader, writer, kind)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                pass
            finally:
                writer.close()
            if held:
                self.lifetimes[kind].append(round(time.monotonic() - opened, 3))
            else:
                self.failures[kind] += 1
                await asyncio.sleep(RETRY_S)

    async def _drip(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: {self.host}\r\n".encode())
        self.open["slow"] += 1
        try:
            n = 0
            while True:  # a header line now and then, never the blank line that ends them
                await writer.drain()
                if await _closed_within(reader, self.drip_s):
                    return True
                writer.write(f"X-Drip-{n}: x\r\n".encode())
                n += 1
        finally:
            self.open["slow"] -= 1

    async def _websocket(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, kind: str) -> bool:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            return False
        if not (await _read_frame(reader) or "").startswith("0"):  # Engine.IO open
            return False
        if kind == "authenticated":
            _write_frame(writer, "40/jobs," + json.dumps({"token": self.token}))
            if not (await _read_frame(reader) or "").startswith("40/jobs,"):
                return False
        self.open[kind] += 1
        try:
            while (message := await _read_frame(reader)) is not None:
                if message == "2":  # Engine.IO ping
                    _write_frame(writer, "3")
            return True
        finally:
            self.open[kind] -= 1

    def report(self) -> str:
        line = {"open": dict(self.open), "lifetimes": self.lifetimes, "failures": dict(self.failures)}
        self.lifetimes = {kind: [] for kind in KINDS}
        return json.dumps(line)


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(65536), seconds)
    except TimeoutError:
        return False
    return True if not data else await _closed_within(reader, seconds)  # an error response: then EOF


def _write_frame(writer: asyncio.StreamWriter, text: str) -> None:
    """One masked text frame (a client must mask)."""
    payload, mask = text.encode(), os.urandom(4)
    n = len(payload)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    writer.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


async def _read_frame(reader: asyncio.StreamReader) -> str | None:
    """The next text message, or None once the server closes (close frame or EOF)."""
    while True:
        try:
            first, second = await reader.readexactly(2)
        except asyncio.IncompleteReadError:
            return None
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await reader.readexactly(8))
        payload = await reader.readexactly(n)
        opcode = first & 0x0F
        if opcode == 0x8:
            return None
        if opcode == 0x1:
            return payload.decode()


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("--anonymous", type=int, default=0)
    parser.add_argument("--authenticated", type=int, default=0)
    parser.add_argument("--token", default=None)
    parser.add_argument("--slow", type=int, default=0)
    parser.add_argument("--drip-s", type=float, default=1.0)
    parser.add_argument("--report-s", type=float, default=0.5)
    parser.add_argument("--ramp-per-s", type=float, default=1000.0, help="new connections per second")
    args = parser.parse_args(argv)
    url = urlsplit(args.base_url)
    load = Load(url.hostname or "127.0.0.1", url.port or 80, args.token, args.drip_s)
    kinds = ["anonymous"] * args.anonymous + ["authenticated"] * args.authenticated + ["slow"] * args.slow
    tasks = []
    for i, kind in enumerate(kinds):
        tasks.append(asyncio.create_task(load.hold(kind)))
        if i % 50 == 49:
            await asyncio.sleep(50 / args.ramp_per_s)
    while True:
        print(load.report(), flush=True)
        await asyncio.sleep(args.report_s)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
