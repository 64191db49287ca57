"""``arag ask`` through a running ``arag serve`` of the same data folder.

The embedded store is open in one process at a time, so while ``arag serve`` runs, an ``arag ask``
over the same data folder cannot open it; and a cold ``arag ask`` spends about a second importing
LangGraph and langchain-core before its first step. So the server, once it listens, writes
``<data_dir>/server.json`` (its URL and process id, mode 0600) and removes it when it stops;
``arag ask`` reads it and asks the question over HTTP (``/v1/chat/completions``, model ``rag``),
importing neither LangGraph nor the model.

The question and the API key (``ARAG_API_KEY``) go only to the user's own server, so the file is
followed only when every check holds (Linux ``/proc``; elsewhere ``arag ask`` answers itself):

- the data folder and the file belong to the user and no one else may write them; the file is a
  regular file, opened without following a symlink and read from the same descriptor;
- its URL is plain HTTP to a loopback address;
- its process is alive, not a zombie, started when the file says (not a later process under
  the same pid), runs with every uid the user's (a setuid program another user started does
  not pass), is an ``arag serve`` (``serve`` in its command line), and holds the socket that
  listens on that port (``/proc/<pid>/fd`` against ``/proc/net/tcp``): a stale file whose pid
  or port another program took over, or a file a cloned repository brought along, is ignored.

The request goes over a connection checked, before anything is sent, to have been accepted by
that very process (so a server that died after the check and whoever took its port get
nothing); it uses ``http.client`` (no proxy variables), one deadline for the whole answer and a
size cap. This module imports nothing heavy: ``arag ask`` loads it first.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "SERVER_FILE",
    "NotTheServerError",
    "ServerAnswer",
    "UnreachableError",
    "advertise",
    "ask",
    "locate_server",
    "running_server",
    "withdraw",
]

SERVER_FILE = "server.json"
_MAX_FILE = 4096
_MAX_ANSWER = 16 * 1024 * 1024
_EXITS = frozenset({"answered", "abstained", "budget", "max_iterations", "error", "awaiting_approval"})


def advertise(data_dir: Path, host: str, port: int) -> Path:
    """Write ``<data_dir>/server.json`` for a server of this process listening on ``host:port``
    (an unspecified address such as 0.0.0.0 is reached on loopback): a private temporary file
    (``mkstemp``: new, 0600) renamed over the old one."""
    reach = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104 - reached, not bound
    url = f"http://[{reach}]:{port}" if ":" in reach else f"http://{reach}:{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=f".{SERVER_FILE}.")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({"url": url, "pid": os.getpid(), "started": _start_time(os.getpid())}, fh)
        Path(tmp).replace(data_dir / SERVER_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    return data_dir / SERVER_FILE


def withdraw(data_dir: Path) -> None:
    """Remove ``server.json`` if this process wrote it (a newer server's file stays). Never
    raises and never blocks: it runs while the server shuts down."""
    with contextlib.suppress(Exception):
        record = _read_private(data_dir / SERVER_FILE)
        if record is not None and record.get("pid") == os.getpid():
            (data_dir / SERVER_FILE).unlink()


def _read_private(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path`` if it is a regular file of this user that no one else may
    write, at most 4 KiB; read from the descriptor that was checked (no symlink, no FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
            return None
        if info.st_size > _MAX_FILE:
            return None
        data = os.read(fd, _MAX_FILE + 1)
    finally:
        os.close(fd)
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def running_server(data_dir: Path) -> str | None:
    """The URL of the live ``arag serve`` of ``data_dir``, or ``None``: no file, a stale one, or
    one that fails a check of the module docstring (:func:`locate_server` says which)."""
    found = locate_server(data_dir)
    return found[0] if isinstance(found, tuple) else None


def locate_server(data_dir: Path) -> tuple[str, int, str] | str:
    """``(url, pid, start time)`` of the live ``arag serve`` of ``data_dir``; else why not (empty
    when there is no file at all)."""
    path = data_dir / SERVER_FILE
    if not os.path.lexists(path):
        return ""
    try:
        folder = data_dir.stat()
    except OSError:
        return "the data folder cannot be read"
    if folder.st_uid != os.getuid() or folder.st_mode & 0o022:
        return "the data folder is not yours alone (others could replace the file)"
    record = _read_private(path)
    if record is None:
        return "it is not a private regular file of yours holding a JSON object"
    pid, url = record.get("pid"), record.get("url")
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**22 or not isinstance(url, str):
        return "it names no process and URL"
    port = _loopback_port(url)
    if port is None:
        return "its URL is not plain HTTP to a loopback address"
    started = record.get("started")
    if not isinstance(started, str) or not _serves(pid, started, port):
        return f"process {pid} is not an arag serve of yours listening on port {port} (a stale file)"
    return url, pid, started


def _loopback_port(url: str) -> int | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or not parts.hostname or port is None or parts.username or parts.password:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    try:
        loopback = parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return None
    return port if loopback else None


def _serves(pid: int, started: str, port: int) -> bool:
    """Whether process ``pid`` (started at ``started``, so not a later process under a reused pid)
    is alive, runs as this user, is an ``arag serve``, and holds a socket listening on ``port``."""
    sockets = _server_sockets(pid, started)
    return any(state == "0A" and local[1] == port for state, local, _, inode in _tcp_rows() if inode in sockets)


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces and
    parentheses): the state first, the start time at index 19. Raises OSError, IndexError."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _start_time(pid: int) -> str | None:
    """When ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    try:
        return _stat_fields(pid)[19]
    except (OSError, IndexError):
        return None


def _server_sockets(pid: int, started: str) -> set[str]:
    """The socket inodes of ``pid`` if it is the live ``arag serve`` of this user that started at
    ``started``, else none: every uid of it (real, effective, saved, filesystem) is the user's, so
    a setuid program another user started (``su``, waiting at its prompt) does not pass."""
    proc = Path(f"/proc/{pid}")
    me = str(os.getuid())
    try:
        fields = _stat_fields(pid)
        if fields[0] in ("Z", "X") or fields[19] != started:
            return set()  # dead (its sockets are closed), or another process under the same pid
        uids = next(line.split()[1:] for line in (proc / "status").read_text().splitlines() if line.startswith("Uid:"))
        if len(uids) != 4 or any(uid != me for uid in uids):
            return set()
        if b"serve" not in (proc / "cmdline").read_bytes().split(b"\0"):
            return set()  # not `arag serve`
        sockets = set()
        for fd in (proc / "fd").iterdir():
            with contextlib.suppress(OSError):
                target = str(fd.readlink())
                if target.startswith("socket:["):
                    sockets.add(target[8:-1])
    except (OSError, IndexError, StopIteration):
        return set()
    return sockets


Endpoint = tuple[str, int]


def _endpoint(text: str) -> Endpoint:
    """``/proc/net/tcp``'s ``0100007F:1F90`` as ("127.0.0.1", 8080); IPv4-mapped IPv6 as IPv4."""
    address, port = text.rsplit(":", 1)
    raw = bytes.fromhex(address)
    if len(raw) == 4:
        return _unmapped(ipaddress.IPv4Address(raw[::-1])), int(port, 16)
    # four 32-bit words, each in host (little-endian) order
    return _unmapped(ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))), int(port, 16)


def _normal(address: tuple[Any, ...]) -> Endpoint:
    """A socket's ``getpeername()``/``getsockname()`` as an :data:`Endpoint` like :func:`_endpoint`'s."""
    return _unmapped(ipaddress.ip_address(address[0])), int(address[1])


def _unmapped(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """``ip`` as text, an IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) as its IPv4 one."""
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


def _tcp_rows() -> list[tuple[str, Endpoint, Endpoint, str]]:
    """(state, local, remote, inode) of every TCP socket in this network namespace."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            with contextlib.suppress(ValueError, IndexError):
                rows.append((fields[3], _endpoint(fields[1]), _endpoint(fields[2]), fields[9]))
    return rows


def _connected_to(pid: int, started: str, sock: socket.socket, wait: float = 2.0) -> bool:
    """Whether the connection ``sock`` made was accepted by ``pid`` itself: the server side of it
    (ESTABLISHED, its local end our peer, its remote end us: addresses and ports) is one of the
    process's sockets. Checked after connecting and before anything is sent, so a server that died
    after the file was checked, and whoever took its port meanwhile, never get the key."""
    server_end, our_end = _normal(sock.getpeername()), _normal(sock.getsockname())
    deadline = time.monotonic() + wait
    while True:  # the kernel completes the handshake before the server's accept() takes it
        sockets = _server_sockets(pid, started)
        if not sockets:
            return False
        if any(row[:3] == ("01", server_end, our_end) and row[3] in sockets for row in _tcp_rows()):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


@dataclass(frozen=True, slots=True)
class ServerCitation:
    number: int
    source: str
    title: str
    location: str
    text: str


@dataclass(frozen=True, slots=True)
class ServerAnswer:
    """What ``arag ask`` prints of a server's answer: the fields of an agent's result the
    completion carries (``partial_answer`` is in ``answer`` when the run abstained)."""

    question: str
    answer: str
    exit_reason: str
    citations: list[ServerCitation]
    usage: dict[str, Any]
    thread_id: str
    error: str | None
    url: str
    reasoning: str = ""
    partial_answer: str = ""
    strategies: str = "rag"

    @property
    def steps(self) -> list[dict[str, Any]]:
        return [{"node": "server", "detail": line} for line in self.reasoning.splitlines() if line.strip()]

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "citations": [
                {"number": c.number, "source": c.source, "title": c.title, "location": c.location, "text": c.text}
                for c in self.citations
            ],
            "exit_reason": self.exit_reason,
            "usage": self.usage,
            "thread_id": self.thread_id,
            "error": self.error,
            "server": self.url,
        }


class UnreachableError(RuntimeError):
    """The server the file names did not take the connection (it just stopped): answer here."""


class NotTheServerError(UnreachableError):
    """Another process accepted the connection (the named server is gone): nothing was sent."""


def ask(
    url: str,
    question: str,
    *,
    api_key: str | None,
    thread_id: str | None,
    timeout: float,
    server: tuple[int, str] | None = None,
) -> ServerAnswer:
    """Ask the ``rag`` agent of the server at ``url``, within ``timeout`` seconds in all.
    ``server`` (pid, start time, from :func:`locate_server`): the connection is checked to be that
    process's before anything is sent (``None`` only where the caller vouches for the URL).

    Raises:
        UnreachableError: The connection was refused or timed out before it was made.
        RuntimeError: The server refused (a wrong key, a full server, a bad request), answered
            with something else than a completion, or did not answer in time.
    """
    body: dict[str, Any] = {"model": "rag", "messages": [{"role": "user", "content": question}], "references": False}
    if thread_id:
        body["thread_id"] = thread_id
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["response"] = _post(url, body, headers, timeout, server)
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="arag-ask-server", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        msg = f"the server at {url} did not answer within {timeout:.0f} s"
        raise RuntimeError(msg)
    if "error" in outcome:
        raise outcome["error"]
    status, data = outcome["response"]
    if status != 200:
        try:
            message = str(data["error"]["message"])
        except (KeyError, TypeError):
            message = "no error message"
        msg = f"the server at {url} answered {status}: {message}"
        raise RuntimeError(msg)
    try:
        return _answer(url, question, data)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        msg = f"the server at {url} sent no chat completion ({type(exc).__name__})"
        raise RuntimeError(msg) from None


def _post(
    url: str, body: dict[str, Any], headers: dict[str, str], timeout: float, server: tuple[int, str] | None
) -> tuple[int, Any]:
    """POST ``body`` to the server's completions endpoint over a connection checked to be
    ``server``'s (:func:`_connected_to`); http.client reads no proxy variables."""
    import http.client

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    try:
        sock = socket.create_connection((host, port), timeout=min(timeout, 5.0))
    except OSError as exc:
        raise UnreachableError(str(exc)) from None
    try:
        if server is not None and not _connected_to(server[0], server[1], sock):
            msg = f"the connection to {url} was not taken by the server that wrote server.json (process {server[0]})"
            raise NotTheServerError(msg)
        sock.settimeout(timeout)
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        connection.sock = sock  # the checked socket, nothing new
        payload = json.dumps(body).encode()
        connection.request(
            "POST",
            "/v1/chat/completions",
            body=payload,
            headers={"Content-Type": "application/json", "Content-Length": str(len(payload)), **headers},
        )
        response = connection.getresponse()
        data = response.read(_MAX_ANSWER + 1)
        if len(data) > _MAX_ANSWER:
            msg = f"the server at {url} sent more than {_MAX_ANSWER // 2**20} MiB"
            raise RuntimeError(msg)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        msg = f"the server at {url} failed: {type(exc).__name__}"
        raise RuntimeError(msg) from None
    finally:
        sock.close()
    try:
        return status, json.loads(data)
    except ValueError:
        return status, None


def _answer(url: str, question: str, data: dict[str, Any]) -> ServerAnswer:
    message = data["choices"][0]["message"]
    extras = data.get("arag") or {}
    exit_reason = str(extras.get("exit_reason") or "answered")
    recorded = extras.get("usage") or {}
    usage: dict[str, Any] = {
        "model_calls": _number(recorded.get("model_calls"), int),
        "total_tokens": _number(recorded.get("total_tokens"), int),
        "seconds": _number(recorded.get("seconds"), float),
    }
    citations = [
        ServerCitation(
            number=_number(c.get("number", i + 1), int),
            source=str(c.get("source", "")),
            title=str(c.get("title", "")),
            location=str(c.get("location") or ""),
            text=str(c.get("text") or c.get("snippet") or ""),
        )
        for i, c in enumerate(message.get("citations") or [])
        if isinstance(c, dict)
    ]
    error = extras.get("error")
    return ServerAnswer(
        question=question,
        answer=str(message.get("content") or ""),
        exit_reason=exit_reason if exit_reason in _EXITS else "unknown",
        citations=citations,
        usage=usage,
        thread_id=str(extras.get("thread_id") or ""),
        error=str(error) if error is not None else None,
        url=url,
        reasoning=str(message.get("reasoning_content") or ""),
        strategies=f"the server at {url}",
    )


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    """``value`` as ``kind`` if it is a finite number, else 0 (a server's usage is only printed)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or abs(value) > 1e15:
        return kind(0)
    return kind(value)
