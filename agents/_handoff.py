"""``arag ask`` through a running ``arag serve`` of the same data folder.

The embedded store is open in one process at a time, so while ``arag serve`` runs, an ``arag ask``
over the same data folder cannot open it; and a cold ``arag ask`` spends about a second importing
LangGraph and langchain-core before its first step. So the server, once it listens, writes
``<data_dir>/server.json`` (its URL and process id, mode 0600) and removes it when it stops;
``arag ask`` reads it, and when the process is alive asks the question over HTTP
(``/v1/chat/completions``, model ``rag``), importing neither LangGraph nor the model.

The file is trusted only when the user running ``arag ask`` owns it, no one else may write it, its
process is alive, and its URL is a loopback one: the API key (``ARAG_API_KEY``) is sent to that
URL and to no other. This module imports nothing heavy: ``arag ask`` loads it first.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["SERVER_FILE", "ServerAnswer", "advertise", "ask", "running_server", "withdraw"]

SERVER_FILE = "server.json"


def advertise(data_dir: Path, host: str, port: int) -> Path:
    """Write ``<data_dir>/server.json`` for a server of this process listening on ``host:port``
    (an unspecified address such as 0.0.0.0 is reached on loopback). Atomic, mode 0600."""
    reach = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104 - reached, not bound
    url = f"http://[{reach}]:{port}" if ":" in reach else f"http://{reach}:{port}"
    path = data_dir / SERVER_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SERVER_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"url": url, "pid": os.getpid()}, fh)
    tmp.replace(path)
    return path


def withdraw(data_dir: Path) -> None:
    """Remove ``server.json`` if this process wrote it (a newer server's file stays)."""
    path = data_dir / SERVER_FILE
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def running_server(data_dir: Path) -> str | None:
    """The URL of the live ``arag serve`` of ``data_dir``, or ``None``: no file, a stale one (its
    process is gone), or one this user cannot trust (another owner, writable by others, a URL
    that is not loopback)."""
    path = data_dir / SERVER_FILE
    try:
        info = path.stat()
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return None
        record = json.loads(path.read_text())
        pid, url = int(record["pid"]), str(record["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid) or not _loopback(url):
        return None
    return url


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process under a recycled id: not our server
        return False
    return True


def _loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


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


def ask(url: str, question: str, *, api_key: str | None, thread_id: str | None, timeout: float) -> ServerAnswer:
    """Ask the ``rag`` agent of the server at ``url``; raises ``RuntimeError`` with the server's
    message when it refuses (a wrong key, a full server, a bad request)."""
    import httpx

    body: dict[str, Any] = {
        "model": "rag",
        "messages": [{"role": "user", "content": question}],
        "references": False,
    }
    if thread_id:
        body["thread_id"] = thread_id
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=timeout)
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        msg = f"the server at {url} answered {response.status_code}: {message}"
        raise RuntimeError(msg)
    data = response.json()
    message = data["choices"][0]["message"]
    extras = data.get("arag") or {}
    usage = {"model_calls": 0, "total_tokens": 0, "seconds": 0.0, **(extras.get("usage") or {})}
    citations = [
        ServerCitation(
            number=int(c.get("number", i + 1)),
            source=str(c.get("source", "")),
            title=str(c.get("title", "")),
            location=str(c.get("location") or ""),
            text=str(c.get("text") or c.get("snippet") or ""),
        )
        for i, c in enumerate(message.get("citations") or data.get("citations") or [])
    ]
    return ServerAnswer(
        question=question,
        answer=str(message.get("content") or ""),
        exit_reason=str(extras.get("exit_reason") or "answered"),
        citations=citations,
        usage=usage,
        thread_id=str(extras.get("thread_id") or ""),
        error=extras.get("error"),
        url=url,
        reasoning=str(message.get("reasoning_content") or ""),
        strategies=f"the server at {url}",
    )
