"""``arag mcp``: the knowledge base as an MCP server, for desktop assistants, IDEs and agents.

Built on the official ``mcp`` SDK's low-level server (explicit tool schemas from Pydantic models,
public transports). Four tools over the agents of :func:`agents.build.build_agents`:

- ``search(query, k=5, mode="hybrid", sources=None)``: passages with id, source, doc_id, title,
  text and score;
- ``ask(question, agent="rag")``: the answer with its citations and exit reason; the RAG agent by
  default (offline, extractive without a chat model), ``"react"`` with ``ARAG_CHAT_MODEL``. Each
  step of the run is an MCP progress notification when the client sent a ``progressToken``;
- ``sources()``: the sources with their descriptions and chunk counts;
- ``read_document(source, doc_id, offset=0, max_chars=100000)``: a stored document's text, its
  chunks joined in order, a page at a time.

Every result has a text part (what a model reads) and ``structuredContent`` (what code reads). A
failure (an unknown source, a missing document, arguments out of range) is a tool error
(``isError``) with a one-line reason, never a dropped connection.

Transports:

- stdio (``arag mcp``, what a client's config launches): stdout carries protocol messages only.
  The process's file descriptor 1 is pointed at stderr before anything loads, so a stray ``print``
  or a C library's output cannot corrupt the stream; logs go to stderr.
- streamable HTTP (``arag mcp --http``) at ``http://HOST:PORT/mcp``. Threat model as for ``arag
  serve``: anyone who can reach the port. With ``ARAG_API_KEY`` every request needs ``Authorization:
  Bearer <key>`` (compared in constant time; 401 with a JSON error otherwise); without one only a
  loopback host is served (:func:`agents.serve._connections.check_exposure`, ``--no-auth`` to serve
  another on purpose), and on loopback the SDK's DNS-rebinding check (Host and Origin must be
  loopback) keeps web pages out. uvicorn runs with ``arag serve``'s connection guards (header
  deadline and size cap, connection cap); the SDK caps bodies at 4 MiB.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.events import AgentEvent, AgentResult, describe
from agents.settings import Settings

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server
    from mcp.types import CallToolResult, Tool
    from starlette.types import ASGIApp, Receive, Scope, Send

    from agents.build import Agents

__all__ = [
    "MCP_PATH",
    "AskArgs",
    "ReadDocumentArgs",
    "SearchArgs",
    "SourcesArgs",
    "create_server",
    "http_app",
    "serve_http",
    "serve_stdio",
]

logger = logging.getLogger("arag.mcp")

MCP_PATH = "/mcp"
"""Where the streamable HTTP endpoint listens."""

INSTRUCTIONS = (
    "A knowledge base of ingested documents. Use `search` for passages, `ask` for an answer with "
    "citations, `sources` to see what it holds, `read_document` for a whole document by its doc_id."
)


# -- arguments (the tools' input schemas) ------------------------------------------------------


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchArgs(_Args):
    """Arguments of ``search``."""

    query: str = Field(min_length=1, max_length=4000, description="What to search for.")
    k: int = Field(default=5, ge=1, le=50, description="How many passages to return.")
    mode: Literal["dense", "sparse", "hybrid"] = Field(
        default="hybrid", description="dense (embeddings), sparse (BM25 keywords) or hybrid (both, fused)."
    )
    sources: list[str] | None = Field(default=None, description="Search only these sources (default: all).")


class AskArgs(_Args):
    """Arguments of ``ask``."""

    question: str = Field(min_length=1, max_length=8000, description="The question.")
    agent: Literal["rag", "react"] = Field(
        default="rag",
        description="rag: retrieve, grade, answer and verify (works without a chat model); "
        "react: a tool-calling agent (needs the server's chat model).",
    )


class SourcesArgs(_Args):
    """``sources`` takes no arguments."""


class ReadDocumentArgs(_Args):
    """Arguments of ``read_document``."""

    source: str = Field(min_length=1, description="The source holding the document (as search returns it).")
    doc_id: str = Field(min_length=1, description="The document's doc_id (as search returns it).")
    offset: int = Field(default=0, ge=0, description="First character to return (for long documents).")
    max_chars: int = Field(default=100_000, ge=1, le=1_000_000, description="Characters to return at most.")


_TOOLS: dict[str, tuple[type[_Args], str]] = {
    "search": (
        SearchArgs,
        "Search the knowledge base for passages (hybrid: embeddings and BM25 fused). Returns the best "
        "passages with id, source, doc_id, title, text and score.",
    ),
    "ask": (
        AskArgs,
        "Answer a question from the knowledge base, with citations [n] pointing at the passages used and "
        "the run's exit_reason (answered, abstained, ...). Slower than search; reports progress.",
    ),
    "sources": (SourcesArgs, "List the sources (collections) of the knowledge base: name, description, chunks."),
    "read_document": (
        ReadDocumentArgs,
        "The full text of one stored document (its chunks in order), by source and doc_id as search "
        "returns them; long documents come a page at a time (offset, max_chars).",
    ),
}


# -- the tools -----------------------------------------------------------------------------------

Progress = Callable[[str], Awaitable[None]]
"""Sends one progress notification with a message (a no-op without a progress token)."""


class _KnowledgeBase:
    """What the tools do, over one set of built agents. The sync parts run in worker threads."""

    def __init__(self, agents: Agents) -> None:
        self.agents = agents

    def search(self, args: SearchArgs) -> CallToolResult:
        hits = self.agents.retriever.search(args.query, k=args.k, mode=args.mode, sources=args.sources)
        passages = [
            {
                "id": c.id,
                "source": c.source,
                "doc_id": c.doc_id,
                "title": c.title,
                "text": c.text,
                "score": c.score,
            }
            for c in hits
        ]
        text = "\n\n".join(
            f"[{n}] {p['title'] or p['doc_id']} (source={p['source']}, doc_id={p['doc_id']}, "
            f"score={p['score']:.3f})\n{p['text']}"
            for n, p in enumerate(passages, 1)
        )
        return _result(text or "No passages found.", {"passages": passages})

    def sources(self, args: SourcesArgs) -> CallToolResult:
        listed = self.agents.retriever.store.list_sources(with_counts=True)
        rows = [{"name": s.name, "description": s.description, "chunks": s.points} for s in listed]
        text = "\n".join(f"{r['name']}: {r['chunks']} chunks. {r['description']}".strip() for r in rows)
        return _result(text or "No sources yet: ingest some with `arag ingest PATH --source NAME`.", {"sources": rows})

    def read_document(self, args: ReadDocumentArgs) -> CallToolResult:
        self.agents.retriever.store.get_source(args.source)  # an unknown source fails listing the known ones
        stored = self.agents.retriever.document(args.doc_id, source=args.source)
        end = min(stored.chars, args.offset + args.max_chars)
        page = stored.text[args.offset : end]
        more = end < stored.chars
        data = {
            "source": stored.source,
            "doc_id": stored.doc_id,
            "title": stored.title,
            "path": stored.path,
            "chunks": stored.chunks,
            "chars": stored.chars,
            "offset": args.offset,
            "next_offset": end if more else None,
            "text": page,
        }
        note = f"\n\n[characters {args.offset}-{end} of {stored.chars}; call again with offset={end}]" if more else ""
        return _result(page + note, data)

    def ask(self, args: AskArgs, progress: Callable[[str], None], stop: threading.Event) -> CallToolResult:
        agent: Any = self.agents.rag if args.agent == "rag" else self.agents.react
        if agent is None:
            why = self.agents.unavailable.get(args.agent, "it is not configured")
            msg = f"the {args.agent!r} agent is unavailable: {why}"
            raise ValueError(msg)
        events: Iterator[AgentEvent] = (
            agent.stream(args.question, tokens=False) if args.agent == "rag" else agent.stream(args.question)
        )
        result: AgentResult | None = None
        with contextlib.closing(events):  # type: ignore[type-var]  # generators close
            for event in events:
                if event.kind == "result":
                    result = event.result
                elif event.kind in ("step", "tool"):
                    progress(describe(event))
                if stop.is_set():  # the request was cancelled: stop the run at its next step
                    msg = "cancelled"
                    raise RuntimeError(msg)
        assert result is not None  # every stream ends with its result
        citations = [c.as_dict() for c in result.citations]
        data = {
            "answer": result.answer,
            "citations": citations,
            "exit_reason": result.exit_reason,
            "agent": args.agent,
            "partial_answer": result.partial_answer,
            "error": result.error,
        }
        lines = [result.answer or result.partial_answer or "(no answer)"]
        if result.citations:
            lines += ["", "Sources:"]
            lines += [
                f"[{c.number}] {c.title or c.doc_id} (source={c.source}, doc_id={c.doc_id})" for c in result.citations
            ]
        lines.append(f"(exit_reason: {result.exit_reason})")
        return _result("\n".join(lines), data)


def _result(text: str, data: dict[str, Any]) -> CallToolResult:
    from mcp.types import CallToolResult, TextContent

    return CallToolResult(content=[TextContent(type="text", text=text)], structuredContent=data)


def _tool(name: str) -> Tool:
    from mcp.types import Tool, ToolAnnotations

    model, description = _TOOLS[name]
    reads = name != "ask"  # ask may run the ReAct agent's tools, which are the user's
    return Tool(
        name=name,
        description=description,
        inputSchema=model.model_json_schema(),
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False) if reads else None,
    )


def _arguments(name: str, arguments: dict[str, Any]) -> Any:
    try:
        return _TOOLS[name][0].model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
        msg = f"invalid arguments for {name!r}: {problems}"
        raise ValueError(msg) from None


def create_server(agents: Agents) -> Server[Any, Any]:
    """The MCP server over built agents: ``search``, ``ask``, ``sources`` and ``read_document``.

    The caller keeps ``agents`` (and closes them); the server only uses them.
    """
    import anyio
    import anyio.from_thread
    import anyio.to_thread
    from mcp.server.lowlevel import Server

    kb = _KnowledgeBase(agents)
    server: Server[Any, Any] = Server("arag", version=_version(), instructions=INSTRUCTIONS)

    async def list_tools() -> list[Tool]:
        return [_tool(name) for name in _TOOLS]

    async def call_tool(name: str, arguments: dict[str, Any]) -> CallToolResult:
        if name not in _TOOLS:
            msg = f"no tool named {name!r}; use one of {sorted(_TOOLS)}"
            raise ValueError(msg)
        args = _arguments(name, arguments)
        if name != "ask":
            handler = getattr(kb, name)
            result: CallToolResult = await anyio.to_thread.run_sync(handler, args)
            return result
        ctx = server.request_context
        token = ctx.meta.progressToken if ctx.meta else None
        sent = 0

        async def send(message: str) -> None:
            nonlocal sent
            if token is None:
                return
            sent += 1
            try:
                await ctx.session.send_progress_notification(
                    token, sent, message=message, related_request_id=str(ctx.request_id)
                )
            except Exception as exc:  # a notification that cannot go out must not end the run
                logger.debug("progress notification not sent: %s", exc)

        def progress(message: str) -> None:
            if token is not None:
                anyio.from_thread.run(send, message)

        stop = threading.Event()
        try:
            answered: CallToolResult = await anyio.to_thread.run_sync(
                kb.ask, args, progress, stop, abandon_on_cancel=True
            )
        finally:
            stop.set()
        return answered

    server.list_tools()(list_tools)  # type: ignore[no-untyped-call]
    server.call_tool()(call_tool)
    return server


def _version() -> str:
    try:
        return version("agentic-rag")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree without installing
        return "0"


# -- stdio ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _protocol_stdout() -> Iterator[io.BufferedWriter]:
    """The real stdout for protocol messages only; file descriptor 1 points at stderr meanwhile,
    so whatever else writes to stdout (``print``, rich, a C library) lands on stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        yield protocol
    finally:
        with contextlib.suppress(OSError, ValueError):
            protocol.flush()
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        protocol.close()


def serve_stdio(settings: Settings | None = None) -> None:
    """Serve over stdin/stdout until the client closes stdin (what ``arag mcp`` runs)."""
    import anyio
    from mcp.server.stdio import stdio_server

    from agents.build import build_agents

    with _protocol_stdout() as protocol, build_agents(settings or Settings(), threads=False) as agents:
        server = create_server(agents)
        _log_ready(agents, "stdio")

        async def run() -> None:
            stdin = anyio.wrap_file(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"))
            stdout = anyio.wrap_file(io.TextIOWrapper(protocol, encoding="utf-8", write_through=True))
            async with stdio_server(stdin, stdout) as (read, write):
                await server.run(read, write, server.create_initialization_options())

        anyio.run(run)


def _log_ready(agents: Agents, where: str) -> None:
    sources = [s.name for s in agents.retriever.store.list_sources()]
    logger.info("arag MCP server on %s: sources %s; agents rag%s", where, sources, ", react" if agents.react else "")
    for name, why in agents.unavailable.items():  # MCP servers that failed were warned about already
        logger.info("%s unavailable: %s", name, why)


# -- streamable HTTP -----------------------------------------------------------------------------


class _KeyRequired:
    """ASGI middleware: every HTTP request needs ``Authorization: Bearer <key>``; 401 otherwise."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            from agents.serve.wire import ApiError

            error = ApiError(
                401,
                "missing or wrong API key: send the header 'Authorization: Bearer <ARAG_API_KEY>'",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
            client = scope.get("client") or ("a client", "")
            logger.info("refused (invalid_api_key): %s:%s %s %s", *client, scope.get("method"), scope.get("path"))
            await error.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        header = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
        scheme, _, token = header.partition(b" ")
        return scheme.lower() == b"bearer" and secrets.compare_digest(token.strip(), self.key)


class _Endpoint:
    """The MCP endpoint as an ASGI app (Starlette mounts a class instance as one)."""

    def __init__(self, handle: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handle(scope, receive, send)


def http_app(server: Server[Any, Any], settings: Settings) -> ASGIApp:
    """The streamable HTTP app at :data:`MCP_PATH`: with ``settings.server.api_key``, behind the
    bearer key; on a loopback host, with the SDK's DNS-rebinding check."""
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.applications import Starlette
    from starlette.routing import Route

    from agents.serve._connections import is_loopback

    security = None
    if is_loopback(settings.server.host):
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    manager = StreamableHTTPSessionManager(app=server, security_settings=security)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        async with manager.run():
            yield

    app: ASGIApp = Starlette(routes=[Route(MCP_PATH, endpoint=_Endpoint(manager.handle_request))], lifespan=lifespan)
    if settings.server.api_key is not None:
        app = _KeyRequired(app, settings.server.api_key.get_secret_value())
    return app


def serve_http(settings: Settings | None = None, *, log_level: Literal["debug", "info", "warning"] = "info") -> None:
    """Serve streamable HTTP on ``settings.server.host``/``port`` until interrupted.

    Raises:
        ValueError: A non-loopback host without an API key and without ``settings.server.no_auth``.
    """
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from agents.build import build_agents
    from agents.serve._connections import check_exposure, connection_limit, guarded_protocol, uvicorn_options

    settings = settings or Settings()
    check_exposure(settings)  # before the agents load: a refusal costs nothing
    with build_agents(settings, threads=False) as agents:
        app = http_app(create_server(agents), settings)
        protocol = guarded_protocol(
            AutoHTTPProtocol,
            header_timeout=settings.server.header_timeout,
            max_connections=connection_limit(settings),
            refuse=lambda reason, message: logger.info("refused (%s): %s", reason, message),
        )
        config = uvicorn.Config(app, http=protocol, **uvicorn_options(settings, log_level))
        _log_ready(agents, f"http://{settings.server.host}:{settings.server.port}{MCP_PATH}")
        uvicorn.Server(config).run()
