"""The ``arag`` command line: ingest, search, sources, ask, chat, serve, eval.

Errors print as one line (``error: ...``) and exit 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.status import Status

from agents._console import err, out, progress_bars
from agents.components import build_embeddings, build_ingestor, build_retriever, build_store
from agents.events import AgentEvent, AgentResult
from agents.settings import Settings
from tools.ingest import IngestError, IngestReport
from tools.retrieval import MODES, Mode, RetrievedChunk

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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Ingest .txt .md .html .pdf .csv .jsonl files into a source. Re-ingesting adds only what changed."""
    metadata = _parse_meta(meta or [])
    settings = Settings()
    with build_store(settings) as store:
        embeddings = build_embeddings(settings)
        with progress_bars(enabled=not quiet) as progress:
            ingestor = build_ingestor(settings, store, embeddings, progress)
            try:
                report = ingestor.ingest_paths(paths, source, description=description, metadata=metadata)
            except IngestError as exc:
                _print_problems(exc.report)
                raise
    _print_problems(report)
    out.print(
        f"{report.source}: {report.files_loaded}/{report.files} files, {report.documents} documents, "
        f"{report.chunks} chunks: {report.added} added, {report.unchanged} unchanged, "
        f"{report.removed} removed{', index rebuilt' if report.indexed else ''} ({report.seconds:.1f} s)"
    )
    if not report.ok:
        err.print("[red]error:[/] nothing could be ingested")
        raise typer.Exit(1)


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
    chosen = _mode(mode)
    settings = Settings()
    with build_store(settings) as store:
        retriever = build_retriever(settings, store, build_embeddings(settings))
        chunks = retriever.search(query, k=k, mode=chosen, sources=source)
    if as_json:
        for chunk in chunks:
            typer.echo(json.dumps(_chunk_json(chunk), ensure_ascii=False))
        return
    if not chunks:
        out.print("no results")
    for rank, chunk in enumerate(chunks, start=1):
        out.print(f"[bold][{rank}][/] {chunk.score:.4f}  {escape(chunk.source)} · {escape(chunk.title)}")
        out.print(f"    {escape(_snippet(chunk.text, 300))}")


@app.command()
def sources(
    delete: Annotated[str | None, typer.Option("--delete", help="Delete this source and all its chunks.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting.")] = False,
) -> None:
    """List the sources (collections) with their size and description."""
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
        out.print(f"[bold]{escape(s.name)}[/]  {s.points} chunks  ({escape(s.embedding_model)})")
        if s.description:
            out.print(f"    {escape(s.description)}")


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
) -> None:
    """Answer a question from the sources with the agent, with numbered citations.

    Without a chat model (ARAG_CHAT_MODEL) the answer is extractive: the best-supported sentences.
    With --long PATH the recursive agent reads PATH whole, however long, instead of searching.
    """
    if long:
        _ask_long(question, long, trace=trace, as_json=as_json, quiet=quiet)
        return
    from agents.rag_agent import RagAgent

    with RagAgent.from_settings(sources=source, threads=thread is not None) as agent:
        result = _run_question(agent, question, thread, show_progress=not quiet and not as_json)
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        _print_result(result, trace=trace)
    if result.exit_reason == "error":
        raise typer.Exit(1)


@app.command()
def chat(
    source: Annotated[
        list[str] | None,
        typer.Option("--source", "-s", help="Source to search; repeatable. Default: chosen per question."),
    ] = None,
    thread: Annotated[str | None, typer.Option("--thread", "-t", help="Continue this thread.")] = None,
    trace: Annotated[bool, typer.Option("--trace", help="Print each step the agent took.")] = False,
) -> None:
    """Chat in the terminal: follow-up questions share one thread. /new starts a thread, /exit ends."""
    import uuid

    from agents.rag_agent import RagAgent

    thread_id = thread or uuid.uuid4().hex[:12]
    with RagAgent.from_settings(sources=source) as agent:
        err.print(f"thread {thread_id} · {agent.strategies.kind} strategies · /new, /exit")
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
            _print_result(_run_question(agent, line, thread_id, show_progress=True), trace=trace, echo=False)


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
) -> None:
    """Serve the agents over an OpenAI-compatible API (/v1/chat/completions) with a web chat page at /.

    Without a key it listens on loopback only; another host needs --api-key (or ARAG_API_KEY) or
    an explicit --no-auth. Limits on connections, headers, bodies and runs: ARAG_SERVER_* settings.
    """
    from agents.server import check_exposure
    from agents.server import serve as run_server

    if log_level not in ("debug", "info", "warning"):
        raise typer.BadParameter(f"{log_level!r}: use info, warning or debug", param_hint="--log-level")
    given = {"host": host, "port": port, "api_key": api_key, "no_auth": no_auth or None}
    # A dict, not a ServerSettings: the options merge with the other ARAG_SERVER_* variables.
    overrides: dict[str, Any] = {"server": {k: v for k, v in given.items() if v is not None}}
    settings = Settings(**overrides)
    check_exposure(settings)  # before the agents load: a refusal costs nothing
    where = f"http://{settings.server.host}:{settings.server.port}"
    if settings.server.api_key:
        auth = "bearer key required"
    elif settings.server.no_auth:
        auth = "[yellow]no key (--no-auth): anyone who can reach the port can use the agents[/]"
    else:
        auth = "no key (set ARAG_API_KEY to require one)"
    err.print(f"serving {where} · chat page {where}/ · API {where}/v1 · {auth}")
    run_server(settings, log_level=log_level)  # type: ignore[arg-type]


def _ask_long(question: str, paths: list[Path], *, trace: bool, as_json: bool, quiet: bool) -> None:
    from agents.rlm_agent import RlmAgent, RlmResult

    agent = RlmAgent.from_settings()
    with err.status("reading", spinner="dots") if not quiet and not as_json else _nothing() as status:
        result = _follow(agent.stream(question, context=paths), status)
    assert isinstance(result, RlmResult)
    for problem in result.problems:
        err.print(f"[yellow]skipped[/] {escape(problem)}")
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        if trace:
            out.print(escape(result.trace_tree()))
        label = {"heuristic": "extractive, no chat model configured"}.get(result.strategies, result.strategies)
        if result.exit_reason != "answered":
            label += f"; {result.exit_reason}"
        out.print(f"[bold]A[/] ({label}): {escape(result.answer)}")
        usage = result.usage
        out.print(
            f"[dim]{result.chars:,} characters, {usage['sub_calls']} sub-calls, depth {result.depth}, "
            f"{usage['model_calls']} model calls, {usage['total_tokens']} tokens, {usage['seconds']:.2f} s[/]"
        )
        if result.error:
            err.print(f"[yellow]{escape(result.error)}[/]")
    if result.exit_reason == "error":
        raise typer.Exit(1)


def _run_question(agent: Any, question: str, thread: str | None, *, show_progress: bool) -> Any:
    """Run the agent, showing each step on stderr as it happens."""
    with err.status("thinking", spinner="dots") if show_progress else _nothing() as status:
        return _follow(agent.stream(question, thread_id=thread, tokens=False), status)


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
            out.print(
                f"[dim]{step['ms']:>8.1f} ms[/] [bold]{escape(step['node']):<14}[/] {escape(str(step['detail']))}"
            )
    if echo:
        out.print(f"[bold]Q:[/] {escape(result.question)}")
    if result.standalone_question and result.standalone_question != result.question:
        out.print(f"[dim](understood as: {escape(result.standalone_question)})[/]")
    label = "extractive answer, no chat model configured" if result.strategies == "heuristic" else result.strategies
    if result.exit_reason != "answered":
        label += f"; {result.exit_reason}"
    out.print(f"[bold]A[/] ({label}): {escape(result.answer)}")
    if result.partial_answer and result.partial_answer != result.answer:
        out.print(f"[dim]unverified draft: {escape(result.partial_answer)}[/]")
    for c in result.citations:
        out.print(f"  [{c.number}] {escape(c.source)} · {escape(c.title)}: {escape(_snippet(c.text, 160))}")
    usage = result.usage
    out.print(f"[dim]{usage['model_calls']} model calls, {usage['total_tokens']} tokens, {usage['seconds']:.2f} s[/]")


def _print_problems(report: IngestReport) -> None:
    for problem in report.problems:
        err.print(f"[yellow]skipped[/] {escape(problem.path)}: {escape(problem.reason)}")
    for warning in report.warnings:
        err.print(f"[yellow]warning[/] {escape(warning)}")


def _mode(mode: str | None) -> Mode | None:
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
            err.print(f"error: {escape(exc.format_message())}")
        return exc.exit_code
    except Exception as exc:
        if debug:
            raise
        err.print(f"[red]error:[/] {escape(_one_line(exc))}")
        return 1
    return result if isinstance(result, int) else 0


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'ARAG_' + str(e['loc'][0]).upper() + ': ' if e['loc'] else ''}{e['msg']}" for e in exc.errors()
        )
        return f"invalid settings: {problems}"
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
