"""How ``arag serve`` holds connections: uvicorn's settings (:func:`uvicorn_config`), and the
limits uvicorn lacks.

Threat model: anyone who can reach the port. They may open many connections and send nothing,
send request headers or a body a few bytes at a time (slowloris), send endless headers, or hang
up halfway through. Each held connection is an open file of the server process, and a process
out of open files can accept nobody, ``/health`` included.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) and answers 503 past
``limit_concurrency`` once a request's headers are in, but it has no deadline for the headers
themselves: a client that never finishes them is held for ever. :func:`guarded_protocol` wraps
uvicorn's HTTP protocol with what is missing:

- a deadline for the headers of each request, from connecting (or from the first byte after a
  response): past it a connection that sent part of a request gets a 408 and is closed; one that
  sent nothing is closed;
- at most :data:`MAX_HEADER_BYTES` of headers (431 past it);
- a cap on connections checked when one is accepted, before anything is read: past it, a 503
  and close at once, so held connections can never use up the open files.

Each refusal is one log line and one count (``/health`` shows the counts); none is a traceback.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import json
import logging
import resource
from collections.abc import Callable
from typing import Any, Literal

from agents.settings import Settings

__all__ = [
    "MAX_HEADER_BYTES",
    "RESERVED_FILES",
    "check_exposure",
    "connection_limit",
    "guarded_protocol",
    "http_protocol",
    "is_loopback",
    "log_config",
    "log_limits",
    "open_files_limit",
    "uvicorn_config",
    "uvicorn_options",
]

MAX_HEADER_BYTES = 64 * 1024
"""Request line plus headers of one request (uvicorn's h11 parser allows 16 KiB, httptools any)."""

RESERVED_FILES = 64
"""Open files kept for everything but connections: stores, SQLite, the model, logs."""

logger = logging.getLogger("arag.server")

Refuse = Callable[[str, str], None]
"""``refuse(reason, message)``: count and log one refused connection or request."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` listens on this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name, or "" / 0.0.0.0 / :: (every interface)


def check_exposure(settings: Settings) -> None:
    """Refuse to serve without a key on a non-loopback address unless ``settings.server.no_auth`` is set.

    Raises:
        ValueError: With what to do: set a key, or say ``--no-auth`` explicitly.
    """
    host = settings.server.host
    if settings.server.no_auth and settings.server.api_key is not None:
        msg = "--no-auth (ARAG_SERVER_NO_AUTH) and an API key are both set: drop one of them"
        raise ValueError(msg)
    if settings.server.api_key is None and not settings.server.no_auth and not is_loopback(host):
        msg = (
            f"refusing to serve {host!r} without an API key: anyone who can reach it could use the agents. "
            "Set ARAG_API_KEY (or --api-key), or pass --no-auth to serve it without one on purpose"
        )
        raise ValueError(msg)


def open_files_limit() -> int | None:
    """The process's (soft) open-files limit, ``ulimit -n``; ``None`` when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def connection_limit(settings: Settings) -> int:
    """``server_limit_concurrency``, lowered to the open-files limit less :data:`RESERVED_FILES`."""
    soft = open_files_limit()
    if soft is None:
        return settings.server.limit_concurrency
    return max(1, min(settings.server.limit_concurrency, soft - RESERVED_FILES))


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration, with the server's own ``arag`` logger on the same handler
    at ``level`` (at ``debug`` failures are logged with their traceback)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["arag"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def _response(status: int, reason: str, message: str, code: str) -> bytes:
    body = json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def guarded_protocol(
    base: type[asyncio.Protocol], *, header_timeout: float, max_connections: int, refuse: Refuse
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class ``base`` (httptools or h11) with a header deadline, a header
    size cap and a connection cap (see the module docstring)."""

    class Guarded(base):  # type: ignore[valid-type,misc]
        _timer: asyncio.TimerHandle | None = None
        _header_bytes = 0

        # uvicorn's protocols have `connections`, `cycle`, `transport`, `loop` and `client`.

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self._refuse_now(
                    503,
                    "Service Unavailable",
                    "too_many_connections",
                    f"the server holds {max_connections} connections already "
                    "(ARAG_SERVER_LIMIT_CONCURRENCY, or the open-files limit); retry shortly",
                )
                return
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._timer is None and not self._busy():
                self._arm()  # the first bytes of the next request on a kept-alive connection
            before = self.cycle
            if self._timer is not None:
                self._header_bytes += len(data)
            super().data_received(data)
            if self.cycle is not before:
                self._disarm()  # the headers are in
            elif self._timer is not None and self._header_bytes > MAX_HEADER_BYTES:
                self._refuse_now(
                    431,
                    "Request Header Fields Too Large",
                    "headers_too_large",
                    f"the request headers are over {MAX_HEADER_BYTES} bytes",
                )

        def _busy(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            self._header_bytes = 0
            self._timer = self.loop.call_later(header_timeout, self._expired)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expired(self) -> None:
            self._timer = None
            if self._busy() or self.transport.is_closing():
                return
            if self._header_bytes:
                self._refuse_now(
                    408,
                    "Request Timeout",
                    "header_timeout",
                    f"the request headers did not arrive within {header_timeout:g} s (ARAG_SERVER_HEADER_TIMEOUT)",
                )
            else:
                refuse("idle_timeout", f"{self._who()}: sent nothing within {header_timeout:g} s; closed")
                self.transport.close()

        def _refuse_now(self, status: int, reason: str, code: str, message: str) -> None:
            self._disarm()
            refuse(code, f"{self._who()}: {status} {message}")
            self.transport.write(_response(status, reason, message, code))
            self.transport.close()

        def _who(self) -> str:
            client = self.client
            return f"{client[0]}:{client[1]}" if client else "a client"

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


def uvicorn_config(app: Any, settings: Settings, *, log_level: Literal["debug", "info", "warning"] = "info") -> Any:
    """The ``uvicorn.Config`` that ``arag serve`` runs ``app`` (from
    :func:`agents.serve.app.create_app`) with: :func:`uvicorn_options` and :func:`http_protocol`.
    Logs the limits in force."""
    import uvicorn

    config = uvicorn.Config(app, http=http_protocol(app, settings), **uvicorn_options(settings, log_level))
    log_limits(settings)
    return config


def uvicorn_options(settings: Settings, log_level: Literal["debug", "info", "warning"] = "info") -> dict[str, Any]:
    """``uvicorn.Config``'s arguments but the app and the protocol.

    uvicorn's own limits: ``limit_concurrency`` (:func:`connection_limit`:
    ``ARAG_SERVER_LIMIT_CONCURRENCY`` lowered to the open-files limit minus 64) and
    ``timeout_keep_alive`` (``ARAG_SERVER_KEEP_ALIVE``). WebSockets are off.
    """
    return {
        "host": settings.server.host,
        "port": settings.server.port,
        "ws": "none",
        "lifespan": "on",
        "log_level": log_level,
        "log_config": log_config(log_level),
        "limit_concurrency": connection_limit(settings),
        "timeout_keep_alive": settings.server.keep_alive,
        "timeout_graceful_shutdown": 10,
    }


def http_protocol(app: Any, settings: Settings) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with the header deadline (``ARAG_SERVER_HEADER_TIMEOUT``), a 64 KiB
    header cap and the connection cap added (:func:`guarded_protocol`), refusals counted by the
    app's server."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return guarded_protocol(
        AutoHTTPProtocol,
        header_timeout=settings.server.header_timeout,
        max_connections=connection_limit(settings),
        refuse=app.state.server.refuse,
    )


def log_limits(settings: Settings) -> None:
    """One log line with the limits in force."""
    logger.info(
        "limits: %d connections (open-files limit %s), headers within %g s, bodies of %d bytes within %g s, "
        "keep-alive %d s, %d runs + %d waiting, %g s per request",
        connection_limit(settings),
        open_files_limit(),
        settings.server.header_timeout,
        settings.server.max_body,
        settings.server.body_timeout,
        settings.server.keep_alive,
        settings.server.max_runs,
        settings.server.max_queue,
        settings.server.deadline,
    )
