"""Tools from MCP servers for the ReAct agent (and any LangChain tool user), synchronous.

```python
from agents.mcp_tools import open_mcp_tools

with open_mcp_tools("mcp.json") as mcp:           # {"mcpServers": {"calc": {"command": ..., "args": [...]}}}
    print(mcp.failures)                            # [McpFailure(server='broken', reason='cannot start ...')]
    agent = ReactAgent(model, tools=mcp.tools)     # plain BaseTools: tool.invoke(...) blocks until the answer
```

``ARAG_MCP_CONFIG`` points :func:`agents.build.build_agents` at such a file; the tools then join the
ReAct agent's and :meth:`Agents.close() <agents.build.Agents.close>` closes them.

The config is the usual ``mcpServers`` shape (``servers``, VS Code's name, is read too): per server
``command`` / ``args`` / ``env`` / ``cwd`` for stdio, or ``url`` / ``headers`` for streamable HTTP;
``transport`` (or ``type``) ``"stdio"``, ``"streamable_http"`` / ``"http"`` or ``"sse"`` says it
outright; ``"disabled": true`` leaves a server out; other keys are ignored. A file that is not
this shape is an :class:`McpConfigError` naming the file and the server.

How it runs. langchain-mcp-adapters turns each server's tools into LangChain tools, but those are
async-only, while the ReAct graph calls tools synchronously (``tool.invoke(call)``, from LangGraph's
worker threads). :class:`McpTools` owns one event loop on one background thread. Each server gets
one task on it that opens the session (spawns the stdio child, or connects over HTTP), lists the
tools and then holds the session open until :meth:`McpTools.close`. Each tool here is a sync
``StructuredTool`` with the server's name, description and JSON schema, whose call is sent to that
loop and waited for (``call_timeout``), so a stdio server is spawned once, not per call, and calls
from several threads share its session. A tool's error (the server's ``isError``, a lost
connection, a timeout) is raised; the ReAct graph turns it into an error ``ToolMessage``.

Failures. Servers start in parallel, each within ``startup_timeout``. One that cannot start (command
not found, exits at once, HTTP unreachable or refusing, no tool list in time) is logged as a
warning and listed in :attr:`McpTools.failures` with the reason; the others' tools still load, and
the agent runs without the failed server's.

Names. A tool keeps the server's name for it (made to fit ``[A-Za-z0-9_-]{1,64}``). A name already
taken, by an earlier server's tool or by one of ``reserved`` (the agent's own tools), becomes
``<server>_<name>``; if that is taken too, opening fails with a :class:`McpConfigError` that says
which servers clash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Collection, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Self, cast

from langchain_core.tools import BaseTool, StructuredTool

if TYPE_CHECKING:
    from langchain_mcp_adapters.sessions import Connection

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_STARTUP_TIMEOUT",
    "McpConfigError",
    "McpFailure",
    "McpTools",
    "open_mcp_tools",
    "parse_mcp_config",
]

logger = logging.getLogger("arag.mcp")

DEFAULT_STARTUP_TIMEOUT = 30.0
"""Seconds a server has to start and list its tools (``npx``/``uvx`` servers may download first)."""

DEFAULT_CALL_TIMEOUT = 120.0
"""Seconds one tool call may take before it fails with a ``TimeoutError``."""

_CLOSE_TIMEOUT = 10.0
"""Seconds :meth:`McpTools.close` waits for the sessions to end (a stdio child gets 2 s to exit on
its own after its stdin closes, then SIGTERM, then SIGKILL: the SDK's shutdown sequence)."""

_TRANSPORTS = {
    "stdio": "stdio",
    "streamable_http": "streamable_http",
    "streamable-http": "streamable_http",
    "http": "streamable_http",
    "sse": "sse",
}

_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")


class McpConfigError(ValueError):
    """The MCP config is not usable: not JSON, not the ``mcpServers`` shape, or a server without
    ``command`` or ``url``. The message names the file and the server."""


class McpFailure(NamedTuple):
    """An MCP server whose tools are missing, and why."""

    server: str
    """The server's name in the config."""
    reason: str
    """What went wrong, in one line: ``cannot start 'npx': No such file or directory``."""


def parse_mcp_config(config: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Connection]:
    """The servers of an MCP config, as langchain-mcp-adapters connections by name.

    Args:
        config: A JSON file's path, or the parsed JSON (``{"mcpServers": {...}}``).

    Raises:
        McpConfigError: The file is missing or not JSON, or the config is not the ``mcpServers``
            shape; the message names the file and the server.
    """
    if isinstance(config, Mapping):
        where, data = "the MCP config", config
    else:
        path = Path(config)
        where = f"MCP config {str(path)!r}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"{where} cannot be read: {exc.strerror or exc}"
            raise McpConfigError(msg) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            raise McpConfigError(msg) from exc
    if not isinstance(data, Mapping):
        msg = f'{where} must be a JSON object like {{"mcpServers": {{"name": {{"command": "..."}}}}}}'
        raise McpConfigError(msg)
    servers = data.get("mcpServers", data.get("servers"))
    if not isinstance(servers, Mapping):
        found = ", ".join(repr(k) for k in data) or "nothing"
        msg = f'{where} has no "mcpServers" object (found {found}); write {{"mcpServers": {{"name": {{...}}}}}}'
        raise McpConfigError(msg)
    connections: dict[str, Connection] = {}
    for name, server in servers.items():
        if not isinstance(server, Mapping):
            msg = f"{where}: server {name!r} must be an object with 'command' (stdio) or 'url' (HTTP)"
            raise McpConfigError(msg)
        if server.get("disabled") is True:
            continue
        connections[str(name)] = _connection(f"{where}: server {name!r}", server)
    return connections


def _connection(where: str, server: Mapping[str, Any]) -> Connection:
    given = server.get("transport", server.get("type"))
    if given is None:
        if "command" in server:
            given = "stdio"
        elif "url" in server:
            given = "streamable_http"
        else:
            msg = f"{where} has neither 'command' (a stdio server to start) nor 'url' (a streamable HTTP server)"
            raise McpConfigError(msg)
    transport = _TRANSPORTS.get(str(given))
    if transport is None:
        msg = f"{where}: transport {given!r} is not one of {', '.join(sorted(_TRANSPORTS))}"
        raise McpConfigError(msg)
    if transport == "stdio":
        command = server.get("command")
        if not isinstance(command, str) or not command.strip():
            msg = f"{where}: a stdio server needs 'command', the program to start (a non-empty string)"
            raise McpConfigError(msg)
        stdio: dict[str, Any] = {
            "transport": "stdio",
            "command": command,
            "args": _strings(where, "args", server.get("args", [])),
        }
        if server.get("env") is not None:
            stdio["env"] = _string_map(where, "env", server["env"])
        if server.get("cwd") is not None:
            stdio["cwd"] = str(server["cwd"])
        return cast("Connection", stdio)
    url = server.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        msg = f"{where}: an HTTP server needs 'url', an http:// or https:// address (got {url!r})"
        raise McpConfigError(msg)
    remote: dict[str, Any] = {"transport": transport, "url": url}
    if server.get("headers") is not None:
        remote["headers"] = _string_map(where, "headers", server["headers"])
    return cast("Connection", remote)


def _strings(where: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        msg = f"{where}: {key!r} must be a list of strings"
        raise McpConfigError(msg)
    return list(value)


def _string_map(where: str, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        msg = f"{where}: {key!r} must be an object of strings"
        raise McpConfigError(msg)
    return {str(k): v for k, v in value.items()}


def open_mcp_tools(
    config: str | os.PathLike[str] | Mapping[str, Any],
    *,
    reserved: Collection[str] = (),
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    call_timeout: float = DEFAULT_CALL_TIMEOUT,
) -> McpTools:
    """Start the servers of an MCP config and return their tools; close the result when done.

    Args:
        config: A JSON file's path (``ARAG_MCP_CONFIG``), or the parsed JSON.
        reserved: Tool names already taken (the agent's own tools): an MCP tool of one of these
            names is renamed ``<server>_<name>``.
        startup_timeout: Seconds each server has to start and list its tools.
        call_timeout: Seconds one tool call may take.

    Raises:
        McpConfigError: The config is malformed, or two servers' tools cannot be told apart. A
            server that fails to start is not an error: see :attr:`McpTools.failures`.
    """
    servers = parse_mcp_config(config)
    return McpTools(servers, reserved=reserved, startup_timeout=startup_timeout, call_timeout=call_timeout)


class McpTools:
    """The tools of some MCP servers as synchronous LangChain tools, over sessions kept open.

    Opening starts every server and waits (at most ``startup_timeout``) for their tool lists;
    :attr:`tools` are then ready. Close it (or use ``with``) to end the sessions: stdio children
    are stopped (stdin closed, then SIGTERM, then SIGKILL) and the loop's thread ends.

    Args:
        servers: Connections by server name (:func:`parse_mcp_config`).
        reserved: Tool names already taken; see the module docstring on names.
        startup_timeout: Seconds each server has to start and list its tools.
        call_timeout: Seconds one tool call may take.
    """

    def __init__(
        self,
        servers: Mapping[str, Connection],
        *,
        reserved: Collection[str] = (),
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        self.servers = dict(servers)
        self.startup_timeout = startup_timeout
        self.call_timeout = call_timeout
        self.tools: list[BaseTool] = []
        """Every started server's tools, in config order."""
        self.failures: list[McpFailure] = []
        """The servers that did not start, with the reason (also logged as warnings)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="arag-mcp", daemon=True)
        self._thread.start()
        self._closing = asyncio.Event()
        self._holders: list[asyncio.Task[None]] = []
        self._closed = False
        try:
            started = asyncio.run_coroutine_threadsafe(self._start_all(), self._loop).result()
            self.tools = _named(self, started, reserved)
        except BaseException:
            self.close()
            raise
        for failure in self.failures:
            logger.warning("MCP server %r is unavailable, running without its tools: %s", *failure)

    # -- start and stop ------------------------------------------------------------------------

    async def _start_all(self) -> list[tuple[str, list[StructuredTool]]]:
        names = list(self.servers)
        lists = await asyncio.gather(*(self._start(name, self.servers[name]) for name in names))
        return [(name, tools) for name, tools in zip(names, lists, strict=True) if tools is not None]

    async def _start(self, name: str, connection: Connection) -> list[StructuredTool] | None:
        started: asyncio.Future[list[StructuredTool]] = asyncio.get_running_loop().create_future()
        holder = asyncio.create_task(self._hold(connection, started), name=f"mcp:{name}")
        self._holders.append(holder)
        try:
            return await asyncio.wait_for(asyncio.shield(started), self.startup_timeout)
        except TimeoutError:
            holder.cancel()  # it stops the child in the background; close() waits for that
            reason = f"no tool list within {self.startup_timeout:g} s (startup timeout)"
        except Exception as exc:
            reason = _reason(exc, connection)
        self.failures.append(McpFailure(name, reason))
        return None

    async def _hold(self, connection: Connection, started: asyncio.Future[list[StructuredTool]]) -> None:
        """Open the session, hand over its tools, and keep it open until :meth:`close`."""
        from langchain_mcp_adapters.sessions import create_session
        from langchain_mcp_adapters.tools import load_mcp_tools

        try:
            async with create_session(connection) as session:
                await session.initialize()
                tools = await load_mcp_tools(session)
                started.set_result([cast(StructuredTool, t) for t in tools])  # coroutine tools, all of them
                await self._closing.wait()
        except Exception as exc:
            if not started.done():
                started.set_exception(exc)
            else:  # after start-up: the calls fail with the lost connection; say so once here too
                logger.warning("MCP session ended with an error: %s", _reason(exc, connection))

    def close(self) -> None:
        """End the sessions (stdio children stopped) and the loop's thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(_CLOSE_TIMEOUT + 5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_CLOSE_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()

    async def _stop(self) -> None:
        self._closing.set()
        if self._holders:
            _, late = await asyncio.wait(self._holders, timeout=_CLOSE_TIMEOUT)
            for holder in late:
                holder.cancel()
            if late:
                await asyncio.wait(late, timeout=_CLOSE_TIMEOUT)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls ---------------------------------------------------------------------------------

    def call(self, tool: StructuredTool, arguments: dict[str, Any]) -> tuple[str, Any]:
        """Run one of the adapter's async tools on the loop and wait for its ``(text, artifact)``.

        Raises:
            ToolException: The server reported the call as failed (its text is the message).
            TimeoutError: No answer within ``call_timeout``.
            RuntimeError: These tools are closed, or the call came from the loop's own thread.
        """
        if self._closed:
            msg = f"MCP tool {tool.name!r} was called after its servers were closed"
            raise RuntimeError(msg)
        if threading.current_thread() is self._thread:
            msg = f"MCP tool {tool.name!r} called from its own event loop; use it from another thread"
            raise RuntimeError(msg)
        coroutine = tool.coroutine
        assert coroutine is not None  # the adapter's tools are coroutine tools

        async def run() -> Any:
            return await coroutine(**arguments)

        future: Future[Any] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        try:
            content, artifact = future.result(timeout=self.call_timeout)
        except TimeoutError:
            if future.done():
                raise  # the tool's own timeout, not ours
            future.cancel()
            msg = f"MCP tool {tool.name!r} did not answer within {self.call_timeout:g} s"
            raise TimeoutError(msg) from None
        return _text(content), artifact


def _named(
    owner: McpTools, started: list[tuple[str, list[StructuredTool]]], reserved: Collection[str]
) -> list[BaseTool]:
    """The wrapped tools of each started server, renamed where a name is taken."""
    taken = dict.fromkeys(reserved, "the agent's own tools")
    named: list[BaseTool] = []
    for server, remote_tools in started:
        for remote in remote_tools:
            name = _TOOL_NAME.sub("_", remote.name)[:64] or "tool"
            if name in taken:
                renamed = _TOOL_NAME.sub("_", f"{server}_{remote.name}")[:64]
                if renamed in taken:
                    msg = (
                        f"MCP server {server!r}: tool {remote.name!r} clashes with {taken[name]}, and so does "
                        f"{renamed!r}; rename a server in the MCP config"
                    )
                    raise McpConfigError(msg)
                why = f"{name!r} is taken by {taken[name]}"
                logger.info("MCP tool %r of server %r is called %r: %s", remote.name, server, renamed, why)
                name = renamed
            taken[name] = f"MCP server {server!r}"
            named.append(_sync_tool(owner, name, server, remote))
    return named


def _sync_tool(owner: McpTools, name: str, server: str, remote: StructuredTool) -> BaseTool:
    """A sync tool with ``remote``'s description and schema whose call ``owner`` runs on its loop."""

    def run(**arguments: Any) -> tuple[str, Any]:
        return owner.call(remote, arguments)

    return StructuredTool(
        name=name,
        description=remote.description or f"The {remote.name!r} tool of the MCP server {server!r}.",
        args_schema=remote.args_schema or {"type": "object", "properties": {}},
        func=run,
        response_format="content_and_artifact",
        metadata={**(remote.metadata or {}), "mcp_server": server, "mcp_tool": remote.name},
    )


def _text(content: Any) -> str:
    """The adapter's content blocks as the text the model reads (images and files by reference)."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content if isinstance(content, list) else [content]:
        if isinstance(block, Mapping) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, Mapping):
            what = block.get("mime_type") or block.get("url") or "binary"
            parts.append(f"[{block.get('type', 'content')}: {what}]")
        else:
            parts.append(str(getattr(block, "content", block)))
    return "\n".join(parts)


def _reason(exc: BaseException, connection: Connection) -> str:
    """One line on why a server did not start."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]  # anyio's task groups wrap what went wrong
    import httpx
    from mcp.shared.exceptions import McpError

    if isinstance(exc, OSError) and connection["transport"] == "stdio":
        return f"cannot start {connection['command']!r}: {exc.strerror or exc}"
    import anyio

    if isinstance(exc, McpError):
        if connection["transport"] == "stdio":
            return f"the server ended the session during start-up ({exc.error.message}); did it crash?"
        return f"the server ended the session: {exc.error.message}"
    closed = anyio.BrokenResourceError | anyio.ClosedResourceError | anyio.EndOfStream
    if isinstance(exc, closed) and connection["transport"] == "stdio":
        # The same crash, seen from the other side: our write to its closed stdin failed first.
        return f"the server ended the session during start-up ({type(exc).__name__}); did it crash?"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from {exc.request.url}"
    if isinstance(exc, httpx.TransportError):
        url = connection.get("url", "")
        return f"cannot reach {url}: {type(exc).__name__}: {exc}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}".rstrip(": ")
