"""A loopback OpenAI-compatible server for tests: the real ``openai`` client talks HTTP to it.

Serves ``POST /v1/embeddings`` with deterministic bag-of-words vectors, and can be told to fail
the next requests (status code and optional ``Retry-After``) to exercise client retries.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import numpy as np


@dataclass
class Fault:
    """A response to send instead of the real one."""

    status: int
    retry_after: float | None = None


@dataclass
class StubState:
    dimension: int = 16
    faults: deque[Fault] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)


def stub_vector(text: str, dimension: int) -> list[float]:
    """The vector the stub returns for ``text`` (words hashed into ``dimension`` buckets)."""
    vector = np.zeros(dimension)
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.md5(word.encode(), usedforsecurity=False).digest()
        vector[digest[0] % dimension] += 1.0
    norm = np.linalg.norm(vector)
    return (vector / norm if norm else np.full(dimension, dimension**-0.5)).tolist()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_POST(self) -> None:
        state = self.server.state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        state.requests.append({"path": self.path, "body": body})
        if state.faults:
            fault = state.faults.popleft()
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            self._send(fault.status, {"error": {"message": f"injected {fault.status}", "type": "stub"}}, headers)
            return
        if self.path.rstrip("/").endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": stub_vector(str(text), state.dimension)}
                for i, text in enumerate(inputs)
            ]
            usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
            self._send(200, {"object": "list", "data": data, "model": body.get("model"), "usage": usage})
            return
        self._send(404, {"error": {"message": f"no route {self.path}", "type": "stub"}})

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: StubState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class OpenAIStub:
    """Run the stub on a free loopback port for the duration of a ``with`` block."""

    def __init__(self, dimension: int = 16) -> None:
        self.state = StubState(dimension=dimension)
        self._server = _Server(self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def fail_next(self, *faults: Fault) -> None:
        """Answer the next requests with these faults, in order."""
        self.state.faults.extend(faults)

    def __enter__(self) -> OpenAIStub:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
