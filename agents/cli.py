"""The ``arag`` command line: ingest, search, sources, ask, chat, serve, mcp, eval.

Errors print as one line (``error: ...``) and exit 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agents._console import err, out, progress_bars, shown
from tools.ingest._clean import terminal_safe

if TYPE_CHECKING:  # the rest loads in the command that needs it: `arag --help` stays light (no pydantic)
    from rich.status import Status

    from agents.events import AgentEvent, AgentResult
    from tools.ingest import IngestError, IngestReport
    from tools.search import Mode, RetrievedChunk

__all__ = ["app", "main"]

app = typer.Typer(
    name="arag",
    help="Agentic RAG over your documents: ingest files into Qdrant, search them, ask questions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
) -> None:
    """Agentic RAG over your documents."""


_Hidden = Annotated[bool, typer.Option("--hidden", help="Include hidden files and folders (names starting with .).")]
_NoGitignore = Annotated[bool, typer.Option("--no-gitignore", help="Do not leave out what .gitignore files ignore.")]
_FollowSymlinks = Annotated[
    bool, typer.Option("--follow-symlinks", help="Follow symlinks whose target is outside the given paths.")
]
_Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="List every skipped entry, not ten of each kind.")]


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (searched recursively).")],
    source: Annotated[str, typer.Option("--source", "-s", help="Source (collection) to ingest into.")],
    description: Annotated[
        str | None, typer.Option("--description", "-d", help="What the source holds (used to route questions).")
    ] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="KEY=VALUE metadata stored with every chunk; repeatable.")
    ] = None,
    sync: Annotated[
        bool,
        typer.Option("--sync", help="Make the source equal to PATHS: remove chunks of files that are gone or renamed."),
    ] = False,
    hidden: _Hidden = False,
    no_gitignore: _NoGitignore = False,
    follow_symlinks: _FollowSymlinks = False,
    verbose: _Verbose = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Ingest documents into a source: .txt .md .mdx .rst .html .pdf .csv .jsonl .docx .pptx .xlsx
    .epub .ipynb. Re-ingesting adds only what changed; every file left out is reported with why."""
    from agents.components import build_embeddings, build_ingestor, build_store
    from agents.settings import Settings
    from tools.ingest import IngestError

    metadata = _parse_meta(meta or [])
    settings = Settings()
    with build_store(settings) as store:
        embeddings = build_embeddings(settings)
        options = {"hidden": hidden, "gitignore": not no_gitignore, "follow_symlinks": follow_symlinks}
        with (
            progress_bars(enabled=not quiet) as progress,
            build_ingestor(settings, store, embeddings, progress, **options) as ingestor,
        ):
            try:
                report = ingestor.ingest_paths(paths, source, description=description, metadata=metadata, sync=sync)
            except IngestError as exc:
                _print_problems(exc.report, verbose=verbose)
                raise
    _print_problems(report, verbose=verbose)
    out.print(_ingest_summary(report))
    if not report.ok:
        err.print("[red]error:[/] nothing could be ingested")
        raise typer.Exit(1)


@app.command()
def watch(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to keep the source equal to.")],
    source: Annotated[str, typer.Option("--source", "-s", help="Source (collection) kept in sync.")],
    description: Annotated[str | None, typer.Option("--description", "-d", help="What the source holds.")] = None,
    hidden: _Hidden = False,
    no_gitignore: _NoGitignore = False,
    follow_symlinks: _FollowSymlinks = False,
    verbose: _Verbose = False,
    poll: Annotated[bool, typer.Option("--poll", help="Poll for changes instead of inotify (network drives).")] = False,
) -> None:
    """Keep a source in sync with folders: sync now (like ingest --sync), then ingest each change as
    files are saved, and remove the chunks of files deleted or renamed. Ctrl-C stops."""
    from agents.components import build_embeddings, build_ingestor, build_store
    from agents.settings import Settings
    from tools.ingest import Watcher

    settings = Settings()
    with build_store(settings) as store, ExitStack() as stack:
        ingestor = build_ingestor(
            settings, store, build_embeddings(settings), hidden=hidden, gitignore=not no_gitignore,
            follow_symlinks=follow_symlinks,
        )  # fmt: skip
        watcher = Watcher(ingestor, paths, source, description=description, force_polling=poll or None)
        stack.callback(ingestor.close)

        def failed(exc: IngestError) -> None:
            _print_problems(exc.report, verbose=verbose)
            err.print(f"[red]error:[/] {shown(str(exc))}; waiting for the next change")

        first = True
        try:
            for report in watcher.run(on_error=failed):
                if first or _changed(report):
                    _print_problems(report, verbose=verbose, removed=True)
                    out.print(_ingest_summary(report))
                if first:
                    err.print(f"watching {', '.join(shown(str(p)) for p in watcher.paths)} · Ctrl-C stops")
                    first = False
        except KeyboardInterrupt:
            pass


def _changed(report: IngestReport) -> bool:
    return bool(report.added or report.removed or report.problems or report.warnings)


def _ingest_summary(report: IngestReport) -> str:
    failed = len(report.problems)
    loaded = f"{report.files_loaded + report.files_unchanged}/{report.files} files"
    if failed:
        loaded += f" ({failed} failed to load)"
    if report.files_unchanged:
        loaded += f" ({report.files_unchanged} unchanged, not read)"
    text = (
        f"{shown(report.source)}: {loaded}, {report.bytes / 2**20:.1f} MB, {report.documents} documents, "
        f"{report.chunks} chunks: {report.added} added, {report.unchanged} unchanged, {report.removed} removed"
    )
    if report.removed_files:
        text += f" ({len(report.removed_files)} files gone)"
    text += f"{', index rebuilt' if report.indexed else ''} ({report.seconds:.1f} s)"
    summary = report.skip_summary()
    return f"{text}\n{summary}" if summary else text


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to search for.")],
    source: Annotated[
        list[str] | None, typer.Option("--source", "-s", help="Source to search; repeatable. Default: all.")
    ] = None,
    mode: Annotated[str | None, typer.Option("--mode", "-m", help="dense, sparse or hybrid.")] = None,
    k: Annotated[int | None, typer.Option("-k", help="Number of chunks.", min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON lines.")] = False,
) -> None:
    """Search the sources and print the best chunks with their scores."""
    from agents.components import build_query_embeddings, build_searcher, build_store
    from agents.events import location
    from agents.settings import Settings

    chosen = _mode(mode)
    settings = Settings()
    with build_store(settings) as store:
        searcher = build_searcher(settings, store, build_query_embeddings(settings))
        chunks = searcher.search(query, k=k, mode=chosen, sources=source)
    if as_json:
        for chunk in chunks:
            typer.echo(terminal_safe(json.dumps(_chunk_json(chunk), ensure_ascii=False)))
        return
    if not chunks:
        out.print("no results")
    for rank, chunk in enumerate(chunks, start=1):
        where = location(chunk.metadata)
        title = f"{chunk.title}, {where}" if where else chunk.title
        out.print(f"[bold][{rank}][/] {chunk.score:.4f}  {shown(chunk.source)} · {shown(title)}")
        out.print(f"    {shown(_snippet(chunk.text, 300))}")


@app.command()
def sources(
    delete: Annotated[str | None, typer.Option("--delete", help="Delete this source and all its chunks.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting.")] = False,
) -> None:
    """List the sources (collections) with their size and description."""
    from agents.components import build_store
    from agents.settings import Settings

    settings = Settings()
    with build_store(settings) as store:
        if delete:
            store.get_source(delete)  # fails clearly before asking
            if not yes and not typer.confirm(f"Delete source {delete!r} and all its chunks?"):
                raise typer.Exit(1)
            store.delete_source(delete)
            out.print(f"deleted {delete}")
            return
        listed = store.list_sources(with_counts=True)
    if not listed:
        out.print("no sources yet; run `arag ingest PATH --source NAME`")
    for s in listed:
        out.print(f"[bold]{shown(s.name)}[/]  {s.points} chunks  ({shown(s.embedding_model)})")
        if s.description:
            out.print(f"    {shown(s.description)}")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    source: Annotated[
        list[str] | None,
        typer.Option("--source", "-s", help="Source to search; repeatable. Default: chosen per question."),
    ] = None,
    thread: Annotated[
        str | None, typer.Option("--thread", "-t", help="Chat thread id: ask a follow-up in that thread.")
    ] = None,
    trace: Annotated[bool, typer.Option("--trace", help="Print each step the agent took.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    long: Annotated[
        list[Path] | None,
        typer.Option(
            "--long",
            "-l",
            help="Answer over this file or folder as one long context (recursive agent), not the sources; repeatable.",
        ),
    ] = None,
    no_server: Annotated[
        bool, typer.Option("--no-server", help="Answer in this process even when `arag serve` runs on the data folder.")
    ] = False,
) -> None:
    """Answer a question from the sources with the agent, with numbered citations.

    Without a chat model (ARAG_CHAT_MODEL) the answer is extractive: the best-supported sentences.
    With --long PATH the recursive agent reads PATH whole, however long, instead of searching.
    While `arag serve` runs on the same data folder, the question goes to it (its agents and
    settings answer; no model loads here); --source and --long always run here.
    """
    if long:
        _ask_long(question, long, trace=trace, as_json=as_json, quiet=quiet)
        return
    from agents.settings import Settings

    settings = Settings()
    if not no_server and not source and (answered := _ask_server(settings, question, thread, quiet or as_json)):
        result: Any = answered
    else:
        from agents.rag_agent import RagAgent

        with RagAgent.from_settings(settings, sources=source, threads=thread is not None) as agent:
            result = _run_question(agent, question, thread, show_progress=not quiet and not as_json)
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        _print_result(result, trace=trace)
    if result.exit_reason == "error":
        raise typer.Exit(1)


def _ask_server(settings: Any, question: str, thread: str | None, quiet: bool) -> Any:
    """The answer of the `arag serve` running on the data folder (:mod:`agents._handoff`), or
    ``None`` when none runs."""
    from agents._handoff import SERVER_FILE, UnreachableError, ask, locate_server

    found = locate_server(settings.store.data_dir)
    if not isinstance(found, tuple):
        if found and not quiet:  # nothing silent: a file that is there but not followed says why
            path = settings.store.data_dir / SERVER_FILE
            err.print(f"[dim]not asking the server named in {shown(str(path))}: {shown(found)}; answering here[/]")
        return None
    url, pid, started = found
    if not quiet:
        err.print(f"[dim]asking the server of this data folder at {shown(url)} (--no-server answers here)[/]")
    key = settings.server.api_key.get_secret_value() if settings.server.api_key else None
    try:
        return ask(
            url, question, api_key=key, thread_id=thread, timeout=settings.server.deadline + 30, server=(pid, started)
        )
    except UnreachableError as exc:  # it stopped after the check (nothing was sent): answer here
        if not quiet:
            err.print(f"[dim]{shown(str(exc))}; answering here[/]")
        return None


@app.command()
def chat(
    source: Annotated[
        list[str] | None,
        typer.Option("--source", "-s", help="Source to search; repeatable. Default: chosen per question."),
    ] = None,
    thread: Annotated[str | None, typer.Option("--thread", "-t", help="Continue this thread.")] = None,
    trace: Annotated[bool, typer.Option("--trace", help="Print each step the agent took.")] = False,
    agent_name: Annotated[
        str,
        typer.Option(
            "--agent",
            "-a",
            help="rag (works without a model) or react (tool calling; needs ARAG_CHAT_MODEL). "
            "Tools named in ARAG_TOOLS_APPROVE ask you y/n/edit before they run.",
        ),
    ] = "rag",
) -> None:
    """Chat in the terminal: follow-up questions share one thread. /new starts a thread, /exit ends."""
    import uuid

    from agents.build import build_agents
    from agents.settings import Settings

    if agent_name not in ("rag", "react"):
        msg = f"unknown agent {agent_name!r}; use rag or react"
        raise typer.BadParameter(msg, param_hint="--agent")
    thread_id = thread or uuid.uuid4().hex[:12]
    with build_agents(Settings(), sources=source) as built:
        agent: Any = built.rag if agent_name == "rag" else built.react
        if agent is None:
            raise ValueError(built.unavailable["react"])
        kind = built.rag.strategies.kind if agent_name == "rag" else f"react on {built.react.client.name}"  # type: ignore[union-attr]
        err.print(f"thread {thread_id} · {kind} · /new, /exit")
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                break
            if line in ("/exit", "/quit"):
                break
            if line == "/new":
                thread_id = uuid.uuid4().hex[:12]
                err.print(f"new thread {thread_id}")
                continue
            if not line:
                continue
            result = _run_question(agent, line, thread_id, show_progress=True)
            while result.exit_reason == "awaiting_approval":
                decisions = {call["id"]: _ask_approval(call) for call in result.pending}
                with err.status("thinking", spinner="dots") as status:
                    result = _follow(agent.stream_resume(thread_id, decisions), status)
            _print_result(result, trace=trace, echo=False)


def _ask_approval(call: dict[str, Any]) -> dict[str, Any]:
    """Ask on the terminal whether a tool call may run: y (approve), n (reject, with an optional
    reason the model reads) or e (edit: new arguments as a JSON object)."""
    arguments = json.dumps(call.get("args") or {}, ensure_ascii=False)
    err.print(f"[yellow]approval needed:[/] {shown(str(call.get('tool')))}({shown(arguments)})")
    while True:
        try:
            answer = input("  run it? [y]es / [n]o / [e]dit: ").strip().lower()
            if answer in ("y", "yes"):
                return {"action": "approve"}
            if answer in ("n", "no"):
                return {"action": "reject", "reason": input("  why not (optional): ").strip()}
            if answer in ("e", "edit") and (args := _ask_arguments()) is not None:
                return {"action": "edit", "args": args}
            if answer not in ("e", "edit"):
                err.print("  answer y, n or e")
        except EOFError:  # no one to ask: the call must not run
            return {"action": "reject", "reason": "nobody answered the approval prompt"}


def _ask_arguments() -> dict[str, Any] | None:
    """New arguments for a call, as a JSON object; asked again until valid, ``None`` (back to the
    y/n/e question) on an empty line."""
    while raw := input("  new arguments (a JSON object; empty to go back): ").strip():
        try:
            args = json.loads(raw)
        except json.JSONDecodeError as exc:
            err.print(f"  not JSON ({exc.msg}); try again")
            continue
        if isinstance(args, dict):
            return args
        err.print("  not a JSON object; try again")
    return None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address (default ARAG_SERVER_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default ARAG_SERVER_PORT, 8000).")] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="Bearer key clients must send (default ARAG_API_KEY: none).")
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option("--no-auth", help="Serve a non-loopback address without a key, on purpose (ARAG_SERVER_NO_AUTH)."),
    ] = False,
    log_level: Annotated[
        str, typer.Option("--log-level", help="info, warning, or debug (debug logs the traceback of failures).")
    ] = "info",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Server processes on the port (default ARAG_SERVER_WORKERS, 1); more than one needs a Qdrant "
            "server (ARAG_QDRANT_URL), and threads in Postgres (ARAG_THREADS_URL) to share them across machines.",
        ),
    ] = None,
) -> None:
    """Serve the agents over an OpenAI-compatible API (/v1/chat/completions) with a web chat page at /.

    Without a key it listens on loopback only; another host needs --api-key (or ARAG_API_KEY) or
    an explicit --no-auth. Limits on connections, headers, bodies and runs: ARAG_SERVER_* settings.
    Threads: SQLite in the data folder, or Postgres with ARAG_THREADS_URL=postgresql://...
    """
    from agents.components import preload_embeddings
    from agents.settings import Settings

    if log_level not in ("debug", "info", "warning"):
        raise typer.BadParameter(f"{log_level!r}: use info, warning or debug", param_hint="--log-level")
    given = {"host": host, "port": port, "api_key": api_key, "no_auth": no_auth or None, "workers": workers}
    # A dict, not a ServerSettings: the options merge with the other ARAG_SERVER_* variables.
    overrides: dict[str, Any] = {"server": {k: v for k, v in given.items() if v is not None}}
    settings = Settings(**overrides)
    from agents.serve._workers import check_workers

    check_workers(settings, settings.server.workers)  # before anything loads: a refusal costs nothing
    if settings.server.workers == 1:
        preload_embeddings(settings)  # the model loads on the other core while the server imports
    from agents.server import check_exposure
    from agents.server import serve as run_server

    check_exposure(settings)  # before the agents load: a refusal costs nothing
    where = f"http://{settings.server.host}:{settings.server.port}"
    if settings.server.api_key:
        auth = "bearer key required"
    elif settings.server.no_auth:
        auth = "[yellow]no key (--no-auth): anyone who can reach the port can use the agents[/]"
    else:
        auth = "no key (set ARAG_API_KEY to require one)"
    processes = f" · {settings.server.workers} workers" if settings.server.workers > 1 else ""
    err.print(f"serving {where} · chat page {where}/ · API {where}/v1 · {auth}{processes}")
    run_server(settings, log_level=log_level)  # type: ignore[arg-type]


@app.command()
def mcp(
    http: Annotated[
        bool, typer.Option("--http", help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio.")
    ] = False,
    host: Annotated[str | None, typer.Option(help="--http: address (default ARAG_SERVER_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="--http: port (default ARAG_SERVER_PORT, 8000).")] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="--http: bearer key clients must send (default ARAG_API_KEY).")
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="--http: serve a non-loopback address without a key, on purpose.")
    ] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="info, warning, or debug (to stderr).")] = "info",
) -> None:
    """Serve the knowledge base as an MCP server: tools search, ask, sources and read_document.

    Over stdio by default (what a desktop client's config launches: stdout carries protocol messages
    only, logs go to stderr), or streamable HTTP with --http, which takes the same key as `arag serve`
    (ARAG_API_KEY) and without one listens on loopback only.
    """
    import logging

    from agents.settings import Settings

    if log_level not in ("debug", "info", "warning"):
        raise typer.BadParameter(f"{log_level!r}: use info, warning or debug", param_hint="--log-level")
    if log_level != "debug":
        logging.getLogger("mcp").setLevel(logging.WARNING)  # the SDK logs every request at info
    given = {"host": host, "port": port, "api_key": api_key, "no_auth": no_auth or None}
    if not http:
        if extra := [f"--{k.replace('_', '-')}" for k, v in given.items() if v is not None]:
            raise typer.BadParameter(f"{', '.join(extra)} apply only with --http", param_hint="--http")
        from agents.mcp_server import serve_stdio

        logging.basicConfig(stream=sys.stderr, level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
        serve_stdio(Settings())
        return
    from agents.mcp_server import MCP_PATH, serve_http
    from agents.server import check_exposure

    overrides: dict[str, Any] = {"server": {k: v for k, v in given.items() if v is not None}}
    settings = Settings(**overrides)
    check_exposure(settings)  # before the agents load: a refusal costs nothing
    auth = "bearer key required" if settings.server.api_key else "no key"
    err.print(f"serving MCP at http://{settings.server.host}:{settings.server.port}{MCP_PATH} · {auth}")
    serve_http(settings, log_level=log_level)  # type: ignore[arg-type]


def _ask_long(question: str, paths: list[Path], *, trace: bool, as_json: bool, quiet: bool) -> None:
    from agents.rlm_agent import RlmAgent, RlmResult

    agent = RlmAgent.from_settings()
    with err.status("reading", spinner="dots") if not quiet and not as_json else _nothing() as status:
        result = _follow(agent.stream(question, context=paths), status)
    assert isinstance(result, RlmResult)
    for problem in result.problems:
        err.print(f"[yellow]skipped[/] {shown(problem)}")
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        if trace:
            out.print(shown(result.trace_tree(), lines=True))
        label = {"heuristic": "extractive, no chat model configured"}.get(result.strategies, result.strategies)
        if result.exit_reason != "answered":
            label += f"; {result.exit_reason}"
        out.print(f"[bold]A[/] ({label}): {shown(result.answer, lines=True)}")
        if result.partial_answer:
            out.print(f"[dim]what it found: {shown(result.partial_answer, lines=True)}[/]")
        usage = result.usage
        out.print(
            f"[dim]{result.chars:,} characters, {usage['sub_calls']} sub-calls, depth {result.depth}, "
            f"{usage['model_calls']} model calls, {usage['total_tokens']} tokens, {usage['seconds']:.2f} s[/]"
        )
        if result.error:
            err.print(f"[yellow]{shown(result.error)}[/]")
    if result.exit_reason == "error":
        raise typer.Exit(1)


def _run_question(agent: Any, question: str, thread: str | None, *, show_progress: bool) -> Any:
    """Run the agent, showing each step on stderr as it happens."""
    from agents.rag_agent import RagAgent  # loaded already: the ReAct agent's module is not (0.1 s)

    # The RAG agent's answer tokens are not shown here; the ReAct agent streams none.
    extra = {"tokens": False} if isinstance(agent, RagAgent) else {}
    with err.status("thinking", spinner="dots") if show_progress else _nothing() as status:
        return _follow(agent.stream(question, thread_id=thread, **extra), status)


def _follow(events: Iterator[AgentEvent], status: Status | None) -> AgentResult:
    """Any agent's events as a one-line progress on stderr; returns the result."""
    result, read = None, 0
    for event in events:
        data, kind = event.data, event.data.get("event")
        read += kind == "sub_call"
        if event.kind == "result":
            result = event.result
        elif status is None:
            continue
        elif kind == "step_start":
            status.update(f"{data['node']}...")
        elif kind == "rlm_map":
            status.update(f"depth {data['depth']}: reading {data['chunks']} chunks...")
        elif kind == "sub_call":
            status.update(f"read {read} chunks...")
    assert result is not None  # every agent's stream ends with its result
    return result


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _print_result(result: Any, *, trace: bool, echo: bool = True) -> None:
    if trace:
        for step in result.steps:
            detail = step.get("detail") or ", ".join(
                f"{k}={v}" for k, v in step.items() if k not in ("event", "node", "ms", "detail")
            )
            name = str(step.get("node") or step.get("tool") or step.get("event"))
            ms = float(step.get("ms") or 0.0)
            out.print(f"[dim]{ms:>8.1f} ms[/] [bold]{shown(name):<14}[/] {shown(str(detail))}")
    if echo:
        out.print(f"[bold]Q:[/] {shown(result.question)}")
    standalone = getattr(result, "standalone_question", "")
    if standalone and standalone != result.question:
        out.print(f"[dim](understood as: {shown(standalone)})[/]")
    strategies = getattr(result, "strategies", "react")
    label = "extractive answer, no chat model configured" if strategies == "heuristic" else strategies
    if result.exit_reason != "answered":
        label += f"; {result.exit_reason}"
    out.print(f"[bold]A[/] ({shown(label)}): {shown(result.answer, lines=True)}")
    if result.partial_answer and result.partial_answer not in result.answer:  # an abstention quotes it already
        what = "what it found" if result.exit_reason == "abstained" else "unverified draft"
        out.print(f"[dim]{what}: {shown(result.partial_answer, lines=True)}[/]")
    for c in result.citations:
        where = f", {c.location}" if c.location else ""
        out.print(f"  [{c.number}] {shown(c.source)} · {shown(c.title)}{shown(where)}: {shown(_snippet(c.text, 160))}")
    usage = result.usage
    out.print(f"[dim]{usage['model_calls']} model calls, {usage['total_tokens']} tokens, {usage['seconds']:.2f} s[/]")


def _print_problems(report: IngestReport, *, verbose: bool = False, removed: bool = True) -> None:
    """Every entry left out, file that failed and row skipped, on stderr, with its reason; bulk kinds
    (hidden, ignored, tool folders, unsupported) list their first ten unless ``verbose``."""
    shown_per_kind: dict[str, int] = {}
    for skip in report.skipped:
        count = shown_per_kind[skip.kind] = shown_per_kind.get(skip.kind, 0) + 1
        if verbose or count <= _LIST_PER_KIND:
            what = f"{skip.path}/" if skip.folder else skip.path
            err.print(f"[yellow]skipped[/] {shown(what)}: {shown(skip.reason)}")
        elif count == _LIST_PER_KIND + 1:
            more = sum(1 for s in report.skipped if s.kind == skip.kind) - _LIST_PER_KIND
            err.print(f"[yellow]skipped[/] ... and {more} more of this kind (--verbose lists them)")
    for problem in report.problems:
        err.print(f"[yellow]failed[/] {shown(problem.path)}: {shown(problem.reason)}")
    for warning in report.warnings:
        err.print(f"[yellow]warning[/] {shown(warning)}")
    if removed:
        for path, chunks in sorted(report.removed_files.items()):
            err.print(f"[cyan]removed[/] {shown(path)} ({chunks} chunks): no longer under the given paths")
    if report.gone_files:
        chunks = sum(report.gone_files.values())
        err.print(
            f"[yellow]warning[/] {len(report.gone_files)} files of {shown(report.source)} under these folders are gone "
            f"or now left out, and keep {chunks} chunks; run the same ingest with --sync to remove them:"
        )
        for path in sorted(report.gone_files)[: None if verbose else _LIST_PER_KIND]:
            err.print(f"    {shown(path)}")


_LIST_PER_KIND = 10


def _mode(mode: str | None) -> Mode | None:
    from tools.search import MODES

    if mode is None:
        return None
    if mode not in MODES:
        msg = f"unknown mode {mode!r}; use one of: {', '.join(MODES)}"
        raise typer.BadParameter(msg, param_hint="--mode")
    return mode


def _parse_meta(items: list[str]) -> dict[str, str]:
    metadata = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            msg = f"expected KEY=VALUE, got {item!r}"
            raise typer.BadParameter(msg, param_hint="--meta")
        metadata[key.strip()] = value.strip()
    return metadata


def _snippet(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + "…"


def _chunk_json(chunk: RetrievedChunk) -> dict[str, Any]:
    return {
        "id": chunk.id,
        "score": chunk.score,
        "source": chunk.source,
        "doc_id": chunk.doc_id,
        "title": chunk.title,
        "path": chunk.path,
        "chunk_index": chunk.chunk_index,
        "text": chunk.text,
        "metadata": chunk.metadata,
    }


def _register_subcommands() -> None:
    """``arag store`` from this package; the others (``arag eval``, from evals/, which builds on
    agents/) from the ``arag.commands`` entry points, so no arrow points up from here. A
    sub-command that fails to load is left out with a warning instead of taking the CLI down."""
    from agents.store_cli import store_app

    app.add_typer(store_app, name="store")
    for entry in sorted(entry_points(group="arag.commands"), key=lambda e: e.name):
        try:
            command = entry.load()
        except Exception as exc:  # a broken plug-in must not break `arag ask`
            err.print(f"warning: `arag {entry.name}` is unavailable: {entry.value} did not load ({exc})")
            continue
        app.add_typer(command, name=entry.name)


_register_subcommands()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``arag`` console script; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    # A command's imports (LangChain's and LangGraph's pydantic models above all) make hundreds of
    # thousands of objects and hardly any garbage; at the default threshold the collector scans
    # them again and again (about 0.2 s of a cold `arag ask`). A larger first generation collects
    # what long runs (serve, watch, chat) make all the same. (Only as the console script: a caller
    # of main() keeps its own collector settings.)
    if argv is None:
        gc.set_threshold(_GC_THRESHOLD, 10, 10)
    from agents.telemetry import configure_tracing, tracing_wanted

    if tracing_wanted() is not None:  # OTEL_EXPORTER_OTLP_ENDPOINT and friends: spans of every run
        configure_tracing()
    try:
        result = app(args=args, prog_name="arag", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        return 130
    except typer.TyperException as exc:  # usage errors: typer prints them with the usage line
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:  # pragma: no cover - every typer usage error has show()
            err.print(f"error: {shown(exc.format_message())}")
        return exc.exit_code
    except Exception as exc:
        if debug:
            raise
        err.print(f"[red]error:[/] {shown(_one_line(exc))}")
        return 1
    finally:
        # Nothing made so far is garbage the exit needs collected: the interpreter's last
        # collection would scan it all once more (about 0.5 s after a cold `arag ask`).
        if argv is None:
            gc.freeze()
    return result if isinstance(result, int) else 0


_GC_THRESHOLD = 20_000
"""Allocations between two collections of the youngest generation (CPython's default is 700)."""


def _one_line(exc: BaseException) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'ARAG_' + str(e['loc'][0]).upper() + ': ' if e['loc'] else ''}{e['msg']}" for e in exc.errors()
        )
        return f"invalid settings: {problems}"
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
