"""``arag eval ...`` commands."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agents._console import out, progress_bars

if TYPE_CHECKING:  # loaded by the commands: `arag --help` lists this app without them
    from tools.retrieval import Mode

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
    from rich.table import Table

    from agents.components import build_embeddings
    from agents.settings import Settings
    from evals.beir import load_beir
    from evals.retrieval import METRICS, index_folder, ingest_corpus, run_queries
    from tools.embeddings import model_identity
    from tools.ingest import Chunker
    from tools.retrieval import Retriever

    chosen = _modes(modes)
    data = load_beir(dataset, split)
    if limit:
        kept = dict(list(data.queries.items())[:limit])
        data = type(data)(data.name, data.corpus_path, kept, {q: data.qrels[q] for q in kept}, split)
    settings = Settings()
    embeddings = build_embeddings(settings, cache=False)  # timings must not come from a cache
    chunker = Chunker(settings.ingest.chunk_size, settings.ingest.chunk_overlap)
    backend = settings.store.effective_backend
    folder = index_folder(settings.store.data_dir, data, chunker, model_identity(embeddings), backend)
    source = re.sub(r"[^A-Za-z0-9_-]", "-", data.name)[:64] or "corpus"
    with progress_bars(enabled=not quiet) as progress:
        store, stats = ingest_corpus(
            folder,
            data,
            embeddings,
            chunker,
            source=source,
            backend=backend,
            fresh=fresh,
            build_index=build_index,
            time_model=time_model,
            batch_size=settings.ingest.batch_size,
            progress=progress,
        )
        with store:
            retriever = Retriever(
                store=store,
                embeddings=embeddings,
                sources=[source],
                prefetch_limit=settings.retrieval.prefetch_limit,
                rrf_k=settings.retrieval.rrf_k,
            )
            results = run_queries(retriever, data, chosen, progress=progress)

    title = f"{data.name} · {split} · {len(data.queries)} queries · {stats.chunks} chunks · {backend}"
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
        run = {"dataset": data.name, "split": split, "queries": len(data.queries), "backend": backend}
        payload = {**results, "ingest": ingest, "run": run}
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload, indent=2))
        out.print(f"wrote {json_path}")


def _modes(text: str) -> list[Mode]:
    from tools.retrieval import MODES

    chosen = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in MODES]
    if unknown or not chosen:
        msg = f"unknown modes {unknown}; choose from {', '.join(MODES)}"
        raise typer.BadParameter(msg, param_hint="--modes")
    return chosen  # type: ignore[return-value]


@eval_app.command("run")
def run_command(
    dataset: Annotated[
        str, typer.Option("--dataset", help="scifact, hotpotqa, squad2, niah, babilong, a folder or a .jsonl file.")
    ],
    agent: Annotated[
        str,
        typer.Option(
            help="rag, search (one hybrid search: the baseline), react (needs a model) or rlm (long-context datasets)."
        ),
    ] = "rag",
    split: Annotated[str | None, typer.Option(help="Dataset split (default: test).")] = None,
    source: Annotated[str | None, typer.Option(help="Ingested source for a .jsonl of questions.")] = None,
    lengths: Annotated[str, typer.Option(help="niah/babilong context lengths, comma-separated.")] = "100000",
    limit: Annotated[int | None, typer.Option(help="Only the first N items.", min=1)] = None,
    concurrency: Annotated[int, typer.Option(help="Items run at once.", min=1)] = 1,
    run_id: Annotated[str | None, typer.Option(help="Name of the run; an existing run of it is resumed.")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where runs are written.")] = Path("runs"),
    seed: Annotated[int, typer.Option(help="Seed of generated datasets.")] = 0,
    judge_repeats: Annotated[int, typer.Option(help="LLM-judge repetitions (with a model).", min=1)] = 3,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run an agent over a dataset: runs/<id>/ gets results.jsonl, manifest.json, summary.json and a
    report (Markdown and HTML with plots). Re-running with the same --run-id resumes it."""
    from rich.table import Table

    from evals.harness import run

    sizes = [int(x.replace("_", "")) for x in lengths.split(",") if x.strip()]
    with progress_bars(enabled=not quiet) as bars:
        result = run(
            dataset,
            agent=agent,
            split=split,
            source=source,
            lengths=sizes,
            limit=limit,
            concurrency=concurrency,
            run_id=run_id,
            runs_dir=runs_dir,
            seed=seed,
            judge_repeats=judge_repeats,
            progress=lambda done, total: bars("items", done, total),
        )
    summary = result.summary
    table = Table(title=f"{summary['run_id']} · {summary['agent']} · {len(result.rows)} items")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in summary["metrics"].items():
        table.add_row(name, "-" if value is None else f"{value:.4f}")
    out.print(table)
    latency = summary["latency"]
    out.print(
        f"latency p50 {latency['p50']} s, p95 {latency['p95']} s; model calls {summary['cost']['model_calls']}, "
        f"tokens {summary['cost']['tokens']}; exits {summary['exit_reasons']}; errors {summary['errors']}"
    )
    out.print(f"wrote {result.dir}/ (results.jsonl, manifest.json, summary.json, report.md, report.html)")


@eval_app.command("compare")
def compare_command(
    run_a: Annotated[Path, typer.Argument(help="The baseline run directory.")],
    run_b: Annotated[Path, typer.Argument(help="The candidate run directory.")],
    metric: Annotated[str | None, typer.Option(help="Gate on this metric only (default: every metric).")] = None,
    threshold: Annotated[float, typer.Option(help="Allowed drop before it counts as a regression.", min=0)] = 0.0,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.", min=100)] = 2000,
    output: Annotated[Path | None, typer.Option(help="Also write the comparison here (Markdown + JSON).")] = None,
) -> None:
    """Metric deltas B - A with paired bootstrap 95% CIs and the items that flipped; exits 1 when the
    gate metric regresses by more than --threshold (for CI)."""
    from rich.table import Table

    from evals.harness import compare, write_comparison

    comparison = compare(run_a, run_b, metric=metric, threshold=threshold, resamples=resamples)
    table = Table(title=f"{comparison['run_a']} -> {comparison['run_b']} · {comparison['items']} paired items")
    for column in ("metric", "A", "B", "delta", "95% CI"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in comparison["metrics"]:
        mark = " *" if row["significant"] else ""
        table.add_row(
            row["name"],
            f"{row['a']:.4f}",
            f"{row['b']:.4f}",
            f"{row['delta']:+.4f}{mark}",
            f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]",
        )
    out.print(table)
    out.print(f"{len(comparison['flipped'])} item-metric flips (em, all_gold@10, abstained)")
    if output:
        write_comparison(comparison, output)
        out.print(f"wrote {output}")
    if comparison["regressions"]:
        out.print(f"[red]regression[/] beyond {threshold}: {', '.join(comparison['regressions'])}")
        raise typer.Exit(1)
    out.print("no regression")
