"""A loopback TCP proxy a test controls: it can stop moving bytes without closing (a cut link), resume,
or drop every connection (what clients see when the server behind it restarts)."""

from __future__ import annotations

import selectors
import socket
import threading

from questboard.testing import free_port


class LinkProxy:
    """Forwards 127.0.0.1:<port> to ``target``; ``cut()`` / ``heal()`` / ``drop_all()``.

    ``listener``: accept on this socket instead (e.g. one made inside a host's network namespace).
    """

    def __init__(self, target_host: str, target_port: int, listener: socket.socket | None = None) -> None:
        self.target = (target_host, target_port)
        if listener is None:
            self.port = free_port()
            listener = socket.create_server(("127.0.0.1", self.port))
        else:
            self.port = listener.getsockname()[1]
        self._listener = listener
        self._listener.setblocking(False)
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._moving = threading.Event()
        self._moving.set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Stop forwarding; every connection stays open and accepted ones wait (bytes pile up unread)."""
        self._moving.clear()

    def heal(self) -> None:
        self._moving.set()

    def drop_all(self) -> None:
        """Close every connection (both sides), as a server restart does."""
        with self._lock:
            socks = list(self._pairs)
            self._pairs.clear()
        for sock in socks:
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.drop_all()
        self._listener.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._moving.wait(0.05):
                continue  # cut: neither accept nor read; the kernel keeps what arrives
            readable = [self._listener, *self._snapshot()]
            try:
                ready, _, _ = _select(readable, 0.05)
            except (OSError, ValueError):
                continue  # a socket closed under us (drop_all)
            for sock in ready:
                if sock is self._listener:
                    self._accept()
                else:
                    self._forward(sock)

    def _snapshot(self) -> list[socket.socket]:
        with self._lock:
            return [s for s in self._pairs if s.fileno() >= 0]

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._pairs[client] = upstream
            self._pairs[upstream] = client

    def _forward(self, sock: socket.socket) -> None:
        with self._lock:
            peer = self._pairs.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(65536)
            if data:
                peer.sendall(data)
                return
        except OSError:
            pass
        with self._lock:
            self._pairs.pop(sock, None)
            self._pairs.pop(peer, None)
        sock.close()
        peer.close()


def _select(socks: list[socket.socket], timeout: float) -> tuple[list[socket.socket], list, list]:
    with selectors.DefaultSelector() as sel:
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ)
        return [key.fileobj for key, _ in sel.select(timeout)], [], []  # type: ignore[misc]
