"""``arag ask`` through a running ``arag serve`` of the same data folder (:mod:`agents._handoff`):
the server advertises itself in ``<data_dir>/server.json`` while it listens; ``arag ask`` trusts
that file only when it is the user's own, private, alive and loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents._handoff import SERVER_FILE, advertise, running_server, withdraw


def _record(data: Path, url: str, pid: int, mode: int = 0o600) -> Path:
    path = data / SERVER_FILE
    path.write_text(json.dumps({"url": url, "pid": pid}))
    path.chmod(mode)
    return path


def test_a_server_advertises_itself_and_withdraws_only_its_own_file(tmp_path: Path) -> None:
    path = advertise(tmp_path, "0.0.0.0", 8123)
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == {"url": "http://127.0.0.1:8123", "pid": os.getpid()}
    assert running_server(tmp_path) == "http://127.0.0.1:8123"
    advertise(tmp_path, "::", 8123)
    assert running_server(tmp_path) == "http://[::1]:8123"
    withdraw(tmp_path)
    assert not path.exists()
    _record(tmp_path, "http://127.0.0.1:8123", os.getppid())  # a newer server's file
    withdraw(tmp_path)
    assert path.exists()


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.mark.parametrize(
    ("url", "pid", "mode", "why"),
    [
        ("http://127.0.0.1:8123", None, 0o600, "its process is gone"),
        ("http://127.0.0.1:8123", 0, 0o600, "no process"),
        ("http://10.1.2.3:8123", "self", 0o600, "not loopback: the key would leave the machine"),
        ("http://evil.example:8123", "self", 0o600, "a host name that is not localhost"),
        ("https://127.0.0.1:8123", "self", 0o600, "not the scheme arag serve speaks"),
        ("http://127.0.0.1:8123", "self", 0o622, "others may write it"),
    ],
)
def test_a_server_file_that_cannot_be_trusted_is_ignored(
    tmp_path: Path, url: str, pid: int | str | None, mode: int, why: str
) -> None:
    chosen = os.getpid() if pid == "self" else _dead_pid() if pid is None else int(pid)
    _record(tmp_path, url, chosen, mode)
    assert running_server(tmp_path) is None, why


def test_a_server_file_of_another_user_or_garbled_is_ignored(tmp_path: Path) -> None:
    assert running_server(tmp_path) is None  # no file
    path = _record(tmp_path, "http://127.0.0.1:8123", os.getpid())
    path.write_text("{not json")
    assert running_server(tmp_path) is None
    path.write_text(json.dumps({"url": "http://127.0.0.1:8123"}))  # no pid
    assert running_server(tmp_path) is None
    if os.getuid() == 0:  # as root the file can be given away: another user's file is not trusted
        _record(tmp_path, "http://127.0.0.1:8123", os.getpid())
        os.chown(path, 65534, 65534)
        assert running_server(tmp_path) is None


def _ask(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    from evals.bench_serve import _env

    return subprocess.run(
        [sys.executable, "-m", "agents.cli", "ask", *args],
        env=_env(data, {}),
        cwd=data,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


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
