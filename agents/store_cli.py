"""``arag store ...``: inspect the store, build its index, and move sources between backends."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agents._console import out, progress_bars, shown

if TYPE_CHECKING:  # the store and the settings load in the command that needs them: `arag --help` stays light
    from tools.store import VectorStore

__all__ = ["store_app"]

store_app = typer.Typer(
    help="Inspect the vector store, build its index, export, import, migrate.", no_args_is_help=True
)

SourcesOption = Annotated[
    list[str] | None, typer.Option("--source", "-s", help="Only this source; repeatable. Default: all.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


@store_app.command()
def info() -> None:
    """Show the backend, where it keeps its data, and each source's size and index state."""
    from agents.components import build_store
    from agents.settings import Settings
    from tools.store import EdgeStore

    settings = Settings()
    with build_store(settings) as store:
        out.print(f"backend: {settings.store.effective_backend} ({shown(settings.store.location)})")
        for source in store.list_sources(with_counts=True):
            pending = store.pending_index(source.name) if isinstance(store, EdgeStore) else None
            index = f", {pending} vectors awaiting the index" if pending else ""
            out.print(f"  {shown(source.name)}: {source.points} chunks, {source.dimension}-d{index}")


@store_app.command()
def optimize(sources: SourcesOption = None, quiet: QuietOption = False) -> None:
    """Build the vector index now over everything added since the last build (embedded backend)."""
    from agents.components import build_store
    from agents.settings import Settings

    settings = Settings()
    with build_store(settings) as store, progress_bars(enabled=not quiet) as progress:
        for name in sources or [s.name for s in store.list_sources()]:
            built = store.refresh_index(name, force=True, progress=progress)
            out.print(f"{name}: {'index built' if built else 'nothing to index'}")


@store_app.command("export")
def export_(
    path: Annotated[Path, typer.Argument(help="JSONL file to write (.gz to compress).")],
    sources: SourcesOption = None,
    quiet: QuietOption = False,
) -> None:
    """Write sources (metadata, vectors, payloads) to a file that `arag store import` reads."""
    from agents.components import build_store
    from agents.settings import Settings
    from tools.store.migrate import export_sources

    with build_store(Settings()) as store, progress_bars(enabled=not quiet) as progress:
        report = export_sources(store, path, sources=sources, progress=progress)
    out.print(f"exported {report.points} chunks of {', '.join(report.sources) or 'no sources'} to {path}")


@store_app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="A file written by `arag store export`.")],
    quiet: QuietOption = False,
) -> None:
    """Load an export into the configured store (no re-embedding)."""
    from agents.components import build_store
    from agents.settings import Settings
    from tools.store.migrate import import_sources

    with build_store(Settings()) as store, progress_bars(enabled=not quiet) as progress:
        report = import_sources(store, path, progress=progress)
    out.print(f"imported {report.points} chunks into {', '.join(report.sources) or 'no sources'}")


@store_app.command()
def migrate(
    to: Annotated[str, typer.Option("--to", help="Target: a Qdrant URL, or a folder with --backend.")],
    backend: Annotated[
        str | None, typer.Option(help="Target backend for a folder: embedded or local. A URL means server.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="API key of the target Qdrant server.")] = None,
    sources: SourcesOption = None,
    quiet: QuietOption = False,
) -> None:
    """Copy sources from the configured store to another one, e.g. an embedded store to a Qdrant
    server (then set ARAG_QDRANT_URL to use it)."""
    from agents.components import build_store
    from agents.settings import Settings
    from tools.store.migrate import copy_sources

    target = _target(to, backend, api_key)
    settings = Settings()
    with build_store(settings) as origin, target, progress_bars(enabled=not quiet) as progress:
        report = copy_sources(origin, target, sources=sources, progress=progress)
    out.print(f"copied {report.points} chunks of {', '.join(report.sources) or 'no sources'} to {to}")


def _target(to: str, backend: str | None, api_key: str | None) -> VectorStore:
    from tools.store import EdgeStore, QdrantStore

    if to.startswith(("http://", "https://")):
        if backend not in (None, "server"):
            msg = f"--to {to} is a URL, which means --backend server, not {backend}"
            raise typer.BadParameter(msg, param_hint="--backend")
        return QdrantStore(to, api_key=api_key)
    if backend == "embedded":
        return EdgeStore(Path(to))
    if backend == "local":
        return QdrantStore(Path(to))
    msg = "a folder target needs --backend embedded or --backend local"
    raise typer.BadParameter(msg, param_hint="--backend")
