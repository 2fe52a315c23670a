"""A small OpenAI-compatible HTTP server for tests: answers ``POST /v1/chat/completions`` from a script.

Each scripted answer is ``(status, headers, body)`` or a stream (``STREAM`` with text pieces); the last
one repeats. Every request is recorded with its JSON body and headers.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STREAM = "stream"


def completion(text: str) -> tuple[int, dict[str, str], bytes]:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


def stream(*pieces: str, delay_s: float = 0.0) -> tuple[str, tuple[str, ...], float]:
    return STREAM, pieces, delay_s


class FakeLLM:
    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True  # a stalled answer must not hold up shutdown
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def worker_env(self, **extra: str) -> dict[str, str]:
        """The environment that points a worker's OpenAI-compatible provider at this server."""
        return {
            "QUESTBOARD_LLM_PROVIDER": "openai",
            "QUESTBOARD_LLM_URL": self.base_url,
            "QUESTBOARD_LLM_TIMEOUT_S": "5",
            **extra,
        }

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_answer(self) -> Any:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "json": json.loads(raw),
                        "at": time.time(),
                    }
                )
                answer = fake.next_answer()
                if answer[0] == STREAM:
                    self._stream(answer[1], answer[2])
                    return
                status, headers, body = answer
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, pieces: tuple[str, ...], delay_s: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                first = {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}
                self.wfile.write(f"data: {json.dumps(first)}\n\n".encode())
                for piece in pieces:
                    time.sleep(delay_s)
                    event = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

        return Handler
