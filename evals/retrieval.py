"""Retrieval benchmark on a BEIR dataset: quality per mode, ingest throughput, query latency.

The corpus is ingested once into a store of its own (under ``<data_dir>/evals/``), keyed by the
corpus hash and the chunking, and reused by later runs. A fresh ingest also times the embedding
model alone on the same chunks, so the pipeline's own cost shows as a ratio.

Documents rank by their best chunk: each query fetches ``3 * k_docs`` chunks and keeps the first
chunk of each document.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from evals.beir import BeirDataset
from evals.metrics import mean_metric, percentile
from tools.embeddings import embed_array
from tools.ingest import Chunker, Ingestor
from tools.ingest.loaders import load_file
from tools.retrieval import Mode, Retriever
from tools.store import EdgeStore, QdrantStore, VectorStore

__all__ = ["IngestStats", "index_folder", "ingest_corpus", "run_queries"]

Progress = Callable[[str, int, int], None]

METRICS = ("ndcg@10", "recall@100", "mrr@10")


@dataclass(frozen=True)
class IngestStats:
    """Timings of one fresh ingest of a corpus."""

    documents: int
    chunks: int
    model_seconds: float
    """The embedding model alone on the same chunk texts."""
    ingest_seconds: float
    """The whole pipeline: load, split, embed, BM25, store."""
    measured_at: str

    @property
    def ratio(self) -> float:
        """Pipeline time over model time; 1.0 means the pipeline adds nothing."""
        return self.ingest_seconds / self.model_seconds if self.model_seconds else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with derived throughput."""
        return {
            **asdict(self),
            "ratio": round(self.ratio, 3) if self.model_seconds else None,
            "docs_per_s": round(self.documents / self.ingest_seconds, 1) if self.ingest_seconds else None,
            "chunks_per_s": round(self.chunks / self.ingest_seconds, 1) if self.ingest_seconds else None,
        }


def index_folder(data_dir: Path, dataset: BeirDataset, chunker: Chunker, model: str, backend: str) -> Path:
    """Where the benchmark keeps the index of ``dataset`` for this chunking, model and backend."""
    safe_model = "".join(ch if ch.isalnum() else "-" for ch in model)
    chunking = f"c{chunker.chunk_size}o{chunker.chunk_overlap}"
    return data_dir / "evals" / f"{dataset.name}-{dataset.corpus_hash()[:12]}-{chunking}-{safe_model}-{backend}"


def open_eval_store(folder: Path, backend: str) -> VectorStore:
    """The benchmark's own store in ``folder``: ``embedded`` (Qdrant Edge) or ``local`` (qdrant-client)."""
    if backend == "embedded":
        return EdgeStore(folder / "edge")
    if backend == "local":
        return QdrantStore(folder / "qdrant")
    msg = f"the retrieval eval builds its own embedded store; backend {backend!r} is not one (use embedded or local)"
    raise ValueError(msg)


def ingest_corpus(
    folder: Path,
    dataset: BeirDataset,
    embeddings: Embeddings,
    chunker: Chunker,
    *,
    source: str,
    backend: str = "embedded",
    fresh: bool = False,
    build_index: bool = False,
    time_model: bool = True,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> tuple[VectorStore, IngestStats]:
    """Open the benchmark index in ``folder``, ingesting the corpus first if needed.

    A fresh ingest first embeds every chunk with the model alone (timed; skipped when
    ``time_model`` is false), then runs the full pipeline on an empty store (timed);
    ``embeddings`` must not be cached for that to be fair. ``build_index`` builds the vector
    index after the timed ingest even when it is below the store's threshold.
    """
    store, stats = _cached(folder, backend, source) if not fresh else (None, None)
    if store is None or stats is None:
        store, stats = _ingest(folder, dataset, embeddings, chunker, source, backend, time_model, batch_size, progress)
    if build_index:  # after timing: the index is built after ingestion, not as part of it
        store.refresh_index(source, force=True, progress=progress)
    return store, stats


def _cached(folder: Path, backend: str, source: str) -> tuple[VectorStore | None, IngestStats | None]:
    stats_path = folder / "ingest.json"
    if not stats_path.is_file():
        return None, None
    store = open_eval_store(folder, backend)
    stats = IngestStats(**json.loads(stats_path.read_text()))
    if store.list_sources() and store.count(source) == stats.chunks:
        return store, stats
    store.close()
    return None, None


def _ingest(
    folder: Path,
    dataset: BeirDataset,
    embeddings: Embeddings,
    chunker: Chunker,
    source: str,
    backend: str,
    time_model: bool,
    batch_size: int,
    progress: Progress | None,
) -> tuple[VectorStore, IngestStats]:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)

    documents = load_file(dataset.corpus_path).documents
    chunks = {c.id: c.index_text for d in documents for c in chunker.split(d, source)}
    texts = sorted(chunks.values(), key=len)  # the order the pipeline embeds in
    embed_array(embeddings, texts[:64])  # warm up: first calls pay for lazy loading and allocation
    model_seconds = _time_model(embeddings, texts, progress) if time_model else 0.0

    store = open_eval_store(folder, backend)
    ingestor = Ingestor(store, embeddings, chunker=chunker, batch_size=batch_size, progress=progress)
    tick = time.perf_counter()
    report = ingestor.ingest_paths([dataset.corpus_path], source, description=f"BEIR {dataset.name} corpus")
    ingest_seconds = time.perf_counter() - tick
    stats = IngestStats(
        documents=report.documents,
        chunks=report.added,
        model_seconds=round(model_seconds, 2),
        ingest_seconds=round(ingest_seconds, 2),
        measured_at=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    (folder / "ingest.json").write_text(json.dumps(asdict(stats), indent=2))
    return store, stats


def _time_model(embeddings: Embeddings, texts: list[str], progress: Progress | None) -> float:
    tick = time.perf_counter()
    for start in range(0, len(texts), 1024):
        embed_array(embeddings, texts[start : start + 1024])
        if progress:
            progress("model", min(start + 1024, len(texts)), len(texts))
    return time.perf_counter() - tick


def run_queries(
    retriever: Retriever,
    dataset: BeirDataset,
    modes: Sequence[Mode],
    *,
    k_docs: int = 100,
    progress: Progress | None = None,
) -> dict[str, dict[str, float]]:
    """Rank documents for every query in every mode; metrics and latency per mode."""
    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        rankings: dict[str, list[str]] = {}
        latencies: list[float] = []
        items = list(dataset.queries.items())
        for done, (qid, text) in enumerate(items, start=1):
            tick = time.perf_counter()
            best = retriever.search_documents(text, k=k_docs, mode=mode)
            latencies.append((time.perf_counter() - tick) * 1000)
            rankings[qid] = [c.doc_id for c in best]
            if progress:
                progress(mode, done, len(items))
        row = {m: round(mean_metric(rankings, dataset.qrels, m), 4) for m in METRICS}
        row["latency_ms_p50"] = round(percentile(latencies, 50), 2)
        row["latency_ms_p95"] = round(percentile(latencies, 95), 2)
        results[mode] = row
    return results
