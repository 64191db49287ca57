"""``arag eval ...`` commands."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agents._console import out, progress_bars
from agents.components import build_embeddings
from agents.settings import Settings
from evals.beir import load_beir
from evals.retrieval import METRICS, index_folder, ingest_corpus, run_queries
from tools.embeddings import model_identity
from tools.ingest import Chunker
from tools.retrieval import MODES, Mode, Retriever

__all__ = ["eval_app"]

eval_app = typer.Typer(help="Measure retrieval and agents on datasets.", no_args_is_help=True)


@eval_app.command("retrieval")
def retrieval(
    dataset: Annotated[Path, typer.Option("--dataset", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/).")],
    split: Annotated[str, typer.Option(help="Qrels split to score (test, train, dev).")] = "test",
    modes: Annotated[str, typer.Option(help="Comma-separated modes.")] = "dense,sparse,hybrid",
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the numbers to this JSON file.")] = None,
    fresh: Annotated[bool, typer.Option(help="Re-ingest the corpus (and re-time ingestion) even if cached.")] = False,
    time_model: Annotated[
        bool, typer.Option(help="On a fresh ingest, also time the embedding model alone (doubles the time).")
    ] = True,
    build_index: Annotated[
        bool, typer.Option(help="Embedded backend: build the HNSW index even below ARAG_INDEX_THRESHOLD.")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="Score only the first N queries (quick checks).", min=1)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Ingest a BEIR corpus (cached) and print nDCG@10, Recall@100, MRR@10 per mode, with ingest
    throughput and query latency."""
    chosen = _modes(modes)
    data = load_beir(dataset, split)
    if limit:
        kept = dict(list(data.queries.items())[:limit])
        data = type(data)(data.name, data.corpus_path, kept, {q: data.qrels[q] for q in kept}, split)
    settings = Settings()
    embeddings = build_embeddings(settings, cache=False)  # timings must not come from a cache
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    folder = index_folder(settings.data_dir, data, chunker, model_identity(embeddings), settings.backend)
    source = re.sub(r"[^A-Za-z0-9_-]", "-", data.name)[:64] or "corpus"
    with progress_bars(enabled=not quiet) as progress:
        store, stats = ingest_corpus(
            folder,
            data,
            embeddings,
            chunker,
            source=source,
            backend=settings.backend,
            fresh=fresh,
            build_index=build_index,
            time_model=time_model,
            batch_size=settings.ingest_batch_size,
            progress=progress,
        )
        with store:
            retriever = Retriever(
                store=store,
                embeddings=embeddings,
                sources=[source],
                prefetch_limit=settings.prefetch_limit,
                rrf_k=settings.rrf_k,
            )
            results = run_queries(retriever, data, chosen, progress=progress)

    title = f"{data.name} · {split} · {len(data.queries)} queries · {stats.chunks} chunks · {settings.backend}"
    table = Table(title=title)
    table.add_column("mode")
    for name in (*METRICS, "p50 ms", "p95 ms"):
        table.add_column(name, justify="right")
    for mode, row in results.items():
        cells = [f"{row[m]:.4f}" for m in METRICS]
        table.add_row(mode, *cells, f"{row['latency_ms_p50']:.1f}", f"{row['latency_ms_p95']:.1f}")
    out.print(table)
    ingest = stats.as_dict()
    model = (
        f"; embedding model alone {stats.model_seconds:.1f} s; pipeline/model = {stats.ratio:.2f}"
        if stats.model_seconds
        else "; the model alone was not timed"
    )
    out.print(
        f"ingest ({ingest['measured_at']}): {stats.documents} docs, {stats.chunks} chunks in "
        f"{stats.ingest_seconds:.1f} s ({ingest['docs_per_s']} docs/s){model}"
    )
    if json_path:
        run = {"dataset": data.name, "split": split, "queries": len(data.queries), "backend": settings.backend}
        payload = {**results, "ingest": ingest, "run": run}
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload, indent=2))
        out.print(f"wrote {json_path}")


def _modes(text: str) -> list[Mode]:
    chosen = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in MODES]
    if unknown or not chosen:
        msg = f"unknown modes {unknown}; choose from {', '.join(MODES)}"
        raise typer.BadParameter(msg, param_hint="--modes")
    return chosen  # type: ignore[return-value]
