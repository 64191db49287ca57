"""``arag serve``'s uvicorn set-up as a real child process (``tests.abuse_server``) under a
256-file limit: open files over many requests, slowloris and idle connections, clients that
hang up mid-upload, slow bodies, endless headers and the connection cap. The signals are the
child's ``/proc/<pid>/fd`` count, status codes and error objects, ``/health`` and chat latency
while slow connections are held, and the child's stderr (no traceback, one line per refusal).

Short versions of ``python -m evals.bench_serve_abuse`` (which holds 100 connections for 15 s
against the real model and 1,000 requests)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

KEY = "k-abuse"
AUTH = {"authorization": f"Bearer {KEY}"}
CHAT = {"model": "rag", "messages": [{"role": "user", "content": "How tall is the Eiffel Tower?"}]}
ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")


class Child:
    """The child server: its URL, pid and every line of its stderr."""

    def __init__(self, process: subprocess.Popen[str], url: str, log: list[str]) -> None:
        self.process, self.url, self.log = process, url, log

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def text(self) -> str:
        return "\n".join(self.log)

    def wait_for(self, needle: str, count: int, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while (found := self.text().count(needle)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return found


@contextlib.contextmanager
def child(tmp_path: Path, nofile: int = 256, **settings: Any) -> Iterator[Child]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARAG_")}
    env |= {"ARAG_API_KEY": KEY, "ARAG_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env |= {f"ARAG_{k.upper()}": str(v) for k, v in settings.items()}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.abuse_server", str(tmp_path), str(nofile)],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line.rstrip())
            if "running on" in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        ready.wait(60)
        found = next((re.search(r"running on http://[\d.]+:(\d+)", line) for line in log if "running on" in line), None)
        assert found, "the child server did not start:\n" + "\n".join(log[-30:])
        yield Child(process, f"http://127.0.0.1:{found.group(1)}", log)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(5)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Child]:
    """One child for the module: 256 open files, headers within 1 s, bodies within 1.5 s."""
    with child(tmp_path_factory.mktemp("abuse"), server_header_timeout=1.0, server_body_timeout=1.5) as server:
        yield server


def _no_traceback(server: Child) -> None:
    text = server.text()
    assert "Traceback" not in text
    assert "Exception in ASGI application" not in text


def test_the_limits_are_logged_at_start(limited: Child) -> None:
    # 256 open files less 64 kept for everything else: 192 connections at most.
    assert (
        "limits: 192 connections (open-files limit 256), headers within 1 s, bodies of 1000000 bytes within 1.5 s"
        in limited.text()
    )


def test_many_requests_leave_the_open_files_flat(limited: Child) -> None:
    with httpx.Client(timeout=30, headers=AUTH) as client:
        for _ in range(20):
            client.post(limited.url + "/v1/chat/completions", json=CHAT)
        before = limited.open_files()

        def one(i: int) -> None:
            body = {**CHAT, "stream": i % 2 == 1, "messages": [{"role": "user", "content": f"Eiffel tower {i}?"}]}
            assert client.post(limited.url + "/v1/chat/completions", json=body).status_code == 200

        for start in range(0, 100, 4):
            threads = [threading.Thread(target=one, args=(i,)) for i in range(start, start + 4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    time.sleep(0.3)
    assert limited.open_files() - before <= 10
    _no_traceback(limited)


def _slow(host: str, port: int, kind: str, stop: threading.Event, closed: dict[str, int]) -> None:
    """Hold one slow connection of ``kind``; reopen it whenever the server closes it."""
    while not stop.is_set():
        with socket.create_connection((host, port)) as sock:
            sock.settimeout(0.2)
            if kind == "headers":
                sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
            elif kind == "body":
                sock.sendall(
                    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\n"
                    + f"authorization: Bearer {KEY}\r\n\r\n{{".encode()
                )
            while not stop.is_set():
                try:
                    if kind != "silent":
                        sock.sendall(b"x-slow: 1\r\n" if kind == "headers" else b" ")
                    data = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    data = b""
                status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "closed"
                closed[f"{kind} {status}"] = closed.get(f"{kind} {status}", 0) + 1
                break


def test_slow_and_idle_connections_under_256_files_leave_health_and_chats_answering(limited: Child) -> None:
    host, port = limited.host_port
    stop, closed = threading.Event(), dict[str, int]()
    holders = [
        threading.Thread(target=_slow, args=(host, port, ("silent", "headers", "body")[i % 3], stop, closed))
        for i in range(100)
    ]
    for t in holders:
        t.start()
    latencies: dict[str, list[float]] = {"health": [], "chat": []}
    most_files = 0
    try:
        time.sleep(0.3)
        deadline = time.monotonic() + 3.0  # three header timeouts: every slow connection cut and reopened
        with httpx.Client(timeout=5, headers=AUTH) as client:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                assert client.get(limited.url + "/health").status_code == 200
                latencies["health"].append(time.perf_counter() - started)
                started = time.perf_counter()
                reply = client.post(limited.url + "/v1/chat/completions", json=CHAT)
                assert reply.status_code == 200, reply.text
                assert "330 metres" in reply.json()["choices"][0]["message"]["content"]
                latencies["chat"].append(time.perf_counter() - started)
                most_files = max(most_files, limited.open_files())
    finally:
        stop.set()
        for t in holders:
            t.join(5)
    assert max(latencies["health"]) < 1.0
    assert max(latencies["chat"]) < 2.0
    assert most_files < 256 - 64
    # The server cut them: silent ones closed, slow headers answered 408, slow bodies 408.
    assert closed.get("silent closed", 0) >= 30
    assert closed.get("headers 408", 0) >= 30
    assert closed.get("body 408", 0) >= 30
    assert limited.wait_for("refused (header_timeout)", 30) >= 30
    assert "refused (idle_timeout)" in limited.text()
    assert "refused (body_timeout)" in limited.text()
    health = httpx.get(limited.url + "/health").json()
    assert {"header_timeout", "idle_timeout", "body_timeout"} <= set(health["refused"])
    _no_traceback(limited)


def test_clients_that_hang_up_mid_upload_are_one_log_line_each(limited: Child) -> None:
    host, port = limited.host_port
    before = limited.text().count("refused (client_disconnected)")
    lines = len(limited.log)
    for _ in range(30):
        with socket.create_connection((host, port)) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 50000\r\n"
                + f"authorization: Bearer {KEY}\r\n\r\n".encode()
                + b'{"model": "rag", "messages": ['
            )
            time.sleep(0.01)
    assert limited.wait_for("refused (client_disconnected)", before + 30) == before + 30
    time.sleep(0.2)
    new = limited.log[lines:]
    assert len(new) == 30  # one line each, and nothing else
    assert all("client hung up during the upload" in line for line in new)
    _no_traceback(limited)


def test_a_slow_body_gets_a_408_error_object_and_the_connection_closes(limited: Child) -> None:
    host, port = limited.host_port
    with socket.create_connection((host, port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n"
            + f"authorization: Bearer {KEY}\r\n\r\n{{".encode()
        )
        sock.settimeout(5)
        started = time.monotonic()
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        waited = time.monotonic() - started
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b"connection: close" in head.lower()
    assert 1.3 < waited < 3.0
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "body_timeout"
    assert "ARAG_SERVER_BODY_TIMEOUT" in error["message"]


def test_endless_headers_get_a_431(limited: Child) -> None:
    host, port = limited.host_port
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        with contextlib.suppress(OSError):
            for _ in range(100):
                sock.sendall(b"x-junk: " + b"a" * 1000 + b"\r\n")
        sock.settimeout(5)
        data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 431")
    assert json.loads(data.partition(b"\r\n\r\n")[2])["error"]["code"] == "headers_too_large"
    assert httpx.get(limited.url + "/health").status_code == 200


def test_past_the_connection_cap_a_503_at_once(tmp_path: Path) -> None:
    with child(tmp_path, server_limit_concurrency=5) as server:
        host, port = server.host_port
        held = [socket.create_connection((host, port)) for _ in range(5)]
        try:
            time.sleep(0.2)
            started = time.perf_counter()
            refused = httpx.get(server.url + "/health", timeout=5)
            assert time.perf_counter() - started < 1.0
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "too_many_connections"
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.2)
        assert httpx.get(server.url + "/health").status_code == 200
        assert "refused (too_many_connections)" in server.text()
        _no_traceback(server)
