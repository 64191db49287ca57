"""``arag ask`` through a running ``arag serve`` of the same data folder (:mod:`agents._handoff`):
the server advertises itself in ``<data_dir>/server.json`` while it listens; ``arag ask`` trusts
that file only when it is the user's own, private, alive and loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents._handoff import SERVER_FILE, _start_time, advertise, locate_server, running_server, withdraw


def _record(data: Path, url: str, pid: object, mode: int = 0o600, started: str | None = None) -> Path:
    """A server.json naming ``pid`` (with its real start time unless ``started`` is given)."""
    path = data / SERVER_FILE
    when = started if started is not None else _start_time(pid) if isinstance(pid, int) and pid > 0 else None
    path.write_text(json.dumps({"url": url, "pid": pid, "started": when}))
    path.chmod(mode)
    return path


_LISTENER = """
import os, socket, sys, time
if len(sys.argv) > 2:  # a uid of another user among its saved ones, as a setuid program has
    os.setresuid(os.getuid(), os.geteuid(), int(sys.argv[2]))
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen()
print(sock.getsockname()[1], flush=True)
time.sleep(600)
"""


@pytest.fixture
def server() -> Iterator[tuple[int, int]]:
    """A process started as `... serve` that listens on a port: what the checks accept. (pid, port)"""
    process = subprocess.Popen([sys.executable, "-c", _LISTENER, "serve"], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    yield process.pid, port
    process.kill()
    process.wait()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    return folder


def test_a_server_advertises_itself_and_withdraws_only_its_own_file(data: Path, server: tuple[int, int]) -> None:
    pid, port = server
    path = advertise(data, "0.0.0.0", port)
    assert path.stat().st_mode & 0o777 == 0o600
    written = {"url": f"http://127.0.0.1:{port}", "pid": os.getpid(), "started": _start_time(os.getpid())}
    assert json.loads(path.read_text()) == written
    assert [p.name for p in data.iterdir()] == [SERVER_FILE]  # no temporary file left behind
    assert running_server(data) is None  # this test process is no `arag serve`
    advertise(data, "::", port)
    assert json.loads(path.read_text())["url"] == f"http://[::1]:{port}"
    withdraw(data)
    assert not path.exists()
    _record(data, f"http://127.0.0.1:{port}", pid)  # another server's file
    assert running_server(data) == f"http://127.0.0.1:{port}"
    withdraw(data)
    assert path.exists()


def test_only_the_process_that_listens_on_the_port_is_trusted(data: Path, server: tuple[int, int]) -> None:
    """A stale file whose pid now belongs to another program, or whose port another program
    holds, is ignored: the pid must hold the listening socket itself."""
    pid, port = server
    _record(data, f"http://127.0.0.1:{port}", os.getpid())  # alive, this user's, but not `serve`
    assert running_server(data) is None
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()  # a port this test process holds, not the named server
        _record(data, f"http://127.0.0.1:{other.getsockname()[1]}", pid)
        assert running_server(data) is None
    dead = _dead_pid()
    _record(data, f"http://127.0.0.1:{port}", dead)
    assert (
        locate_server(data) == f"process {dead} is not an arag serve of yours listening on port {port} (a stale file)"
    )
    _record(data, f"http://127.0.0.1:{port}", pid, started="1")  # the pid of a process started earlier
    assert running_server(data) is None
    _record(data, f"http://127.0.0.1:{port}", pid)
    assert locate_server(data) == (f"http://127.0.0.1:{port}", pid, _start_time(pid))
    (data / SERVER_FILE).unlink()
    assert locate_server(data) == ""  # no file: nothing to say


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.mark.parametrize(
    ("url", "pid", "why"),
    [
        ("http://10.1.2.3:{port}", "self", "not loopback: the key would leave the machine"),
        ("http://evil.example:{port}", "self", "a host name that is not localhost"),
        ("http://user@127.0.0.1:{port}", "self", "credentials in the URL"),
        ("https://127.0.0.1:{port}", "self", "not the scheme arag serve speaks"),
        ("http://127.0.0.1:{port}/proxy", "self", "a path: not a server's base URL"),
        ("http://[::1:{port}", "self", "not a URL"),
        ("http://127.0.0.1:{port}", True, "a boolean is no pid"),
        ("http://127.0.0.1:{port}", 0, "no process"),
        ("http://127.0.0.1:{port}", "1", "a string is no pid"),
        ("http://127.0.0.1:{port}", 10**30, "out of range"),
    ],
)
def test_a_server_file_that_cannot_be_trusted_is_ignored(
    data: Path, server: tuple[int, int], url: str, pid: object, why: str
) -> None:
    _record(data, url.format(port=server[1]), server[0] if pid == "self" else pid)
    assert running_server(data) is None, why


def test_a_file_others_could_have_written_or_swapped_is_ignored(
    data: Path, server: tuple[int, int], tmp_path: Path
) -> None:
    pid, port = server
    assert running_server(data) is None  # no file
    path = _record(data, f"http://127.0.0.1:{port}", pid, mode=0o622)
    assert running_server(data) is None  # others may write it
    path.chmod(0o600)
    data.chmod(0o777)
    assert running_server(data) is None  # others may replace it
    data.chmod(0o755)
    assert running_server(data) == f"http://127.0.0.1:{port}"
    elsewhere = tmp_path / "elsewhere.json"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    assert running_server(data) is None  # a symlink is not followed
    path.unlink()
    os.mkfifo(path, 0o600)
    assert running_server(data) is None  # a FIFO is not read (and does not hang)
    withdraw(data)  # nor does it hang the server's shutdown
    path.unlink()
    path.write_text("[1, 2]")
    path.chmod(0o600)
    assert running_server(data) is None  # not an object
    withdraw(data)
    path.write_text(" " * 5000 + "{}")
    assert running_server(data) is None  # too large for what the server writes
    path.write_text("{not json")
    assert running_server(data) is None
    if os.getuid() == 0:  # as root a file can be given away: another user's file is not trusted
        _record(data, f"http://127.0.0.1:{port}", pid)
        os.chown(path, 65534, 65534)
        assert running_server(data) is None


def _ask(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    from evals.bench_serve import _env

    # A proxy that answers nothing: the loopback request (with the key) must not go through it.
    proxy = {"HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "ALL_PROXY": "http://127.0.0.1:9"}
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", "ask", *args],
        env=_env(data, {"ARAG_API_KEY": "k-secret", **proxy}),
        cwd=data,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


_HOSTILE = """
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
seen = sys.argv[1]

class Hostile(BaseHTTPRequestHandler):
    def do_POST(self):
        with open(seen, "a") as fh:
            fh.write(self.headers.get("Authorization", "") + "\\n")
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        evil = "\\x1b]8;;http://evil.example\\x07click\\x1b]8;;\\x07\\x1bc"
        message = {"content": "answer" + evil, "citations": [{"number": 1, "source": "s" + evil, "title": "t"}]}
        usage = {"model_calls": "1\\x1b[2J", "seconds": 1e300}
        body = {"choices": [{"message": message}], "arag": {"exit_reason": "answered" + evil, "usage": usage}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Hostile)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def test_what_a_server_sends_is_printed_without_its_escape_sequences(data: Path, tmp_path: Path) -> None:
    """Even a process of the user's that passes every check (here a listener started as `... serve`)
    cannot reach the terminal: answer, citations, exit reason and usage are sanitised."""
    seen = tmp_path / "seen.txt"
    listener = subprocess.Popen([sys.executable, "-c", _HOSTILE, str(seen), "serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None
        port = int(listener.stdout.readline())
        path = data / SERVER_FILE
        path.write_text(
            json.dumps({"url": f"http://127.0.0.1:{port}", "pid": listener.pid, "started": _start_time(listener.pid)})
        )
        path.chmod(0o600)
        asked = _ask(data, "When did Apollo 11 land on the Moon?")
    finally:
        listener.kill()
        listener.wait()
    assert asked.returncode == 0, asked.stderr
    assert "\x1b" not in asked.stdout + asked.stderr
    assert "unknown" in asked.stdout  # an exit reason the client does not know is not shown as sent
    assert "0 model calls" in asked.stdout
    assert seen.read_text().split() == ["Bearer", "k-secret"]


@pytest.mark.skipif(os.getuid() != 0, reason="setting another saved uid needs root")
def test_a_process_with_another_users_uid_is_not_the_users_server(data: Path) -> None:
    """A setuid program another user started (``su`` at its password prompt) has the victim's
    effective uid but not all of its uids: it is not the victim's server."""
    process = subprocess.Popen([sys.executable, "-c", _LISTENER, "serve", "65534"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        _record(data, f"http://127.0.0.1:{port}", process.pid)
        assert running_server(data) is None
    finally:
        process.kill()
        process.wait()


def test_nothing_is_sent_over_a_connection_another_process_accepted(server: tuple[int, int], tmp_path: Path) -> None:
    """The server the file named died after the check and another program took its port: the
    connection is checked against the named process before the key or the question is sent."""
    from agents._handoff import ask

    seen = tmp_path / "seen.txt"
    taker = subprocess.Popen([sys.executable, "-c", _HOSTILE, str(seen), "serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert taker.stdout is not None
        port = int(taker.stdout.readline())
        named = server[0]  # alive, this user's, an `... serve`: but not the process on this port
        with pytest.raises(RuntimeError, match=r"was not taken by the server that wrote server\.json"):
            ask(
                f"http://127.0.0.1:{port}",
                "secret question?",
                api_key="k-secret",
                thread_id=None,
                timeout=10,
                server=(named, _start_time(named) or ""),
            )
    finally:
        taker.kill()
        taker.wait()
    assert not seen.exists()  # the listener got a connection and nothing else


def test_ask_goes_to_the_running_server_and_runs_here_once_it_stops(tmp_path: Path) -> None:
    """A real `arag serve` on the data folder: `arag ask` answers through it (where before it failed
    on the store's lock), `--no-server` still tries the store here, and after the server stops
    its file is gone and `arag ask` answers in its own process."""
    from evals.bench_serve import ServerProcess, ingest

    data = tmp_path / "data"
    data.mkdir()
    ingest(data)
    question = "When did Apollo 11 land on the Moon?"
    with ServerProcess(data, {}).running() as url:
        assert running_server(data) == url
        asked = _ask(data, question)
        assert asked.returncode == 0, asked.stderr
        assert f"asking the server of this data folder at {url}" in asked.stderr
        assert f"A (the server at {url}): 20 July 1969" in asked.stdout
        assert "[1] examples" in asked.stdout  # the citations come along
        as_json = json.loads(_ask(data, question, "--json").stdout)
        assert (as_json["exit_reason"], as_json["server"]) == ("answered", url)
        assert as_json["citations"][0]["source"] == "examples"
        off_topic = json.loads(_ask(data, "What colour is the sky on Mars?", "--json").stdout)
        assert off_topic["exit_reason"] == "abstained"  # the server's exit, not "answered"
        here = _ask(data, question, "--no-server")
        assert here.returncode == 1  # the store is the server's while it runs
        assert "error:" in here.stderr
    assert not (data / SERVER_FILE).exists()
    alone = _ask(data, question)
    assert alone.returncode == 0, alone.stderr
    assert "asking the server" not in alone.stderr
    assert "20 July 1969" in alone.stdout
    server = ServerProcess(data, {})
    with server.running():
        assert (data / SERVER_FILE).exists()
        assert server.process is not None
        server.process.terminate()  # SIGTERM, as systemd and docker stop it
        assert server.process.wait(30) != 0  # uvicorn re-raises the signal once it has stopped
        assert not (data / SERVER_FILE).exists()
    _record(data, "http://127.0.0.1:9", server.process.pid)  # what a SIGKILL leaves behind
    stale = _ask(data, question)
    assert stale.returncode == 0, stale.stderr
    assert "(a stale file); answering here" in stale.stderr
    assert "20 July 1969" in stale.stdout
