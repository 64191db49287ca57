"""Vector store benchmark: Qdrant Edge (embedded) against qdrant-client local mode.

    python -m evals.bench_store                       # 10k, 100k, 300k chunks, both backends
    python -m evals.bench_store --sizes 10000 --json runs/bench-store.json

For each collection kind, size and backend, a child process (so peak memory is its own) builds
a store on disk from precomputed vectors and measures: ingest time (upserts of 384-d dense + BM25
sparse vectors with realistic payloads), index build time, query latency p50/p95 for dense,
sparse, hybrid (RRF) and filtered hybrid (10% of the points match), recall@10 of the HNSW index
against exact search, and peak memory: the measuring process's, and that of the child process
Edge builds the index in. Then SciFact's test queries run through both backends'
retrieval eval stores, to compare nDCG@10.

Collections:
- ``scifact``: the 10,460 real SciFact chunks (all-MiniLM-L6-v2 vectors, BM25 vectors of their
  text); larger sizes add noisy copies (dense: the vector plus Gaussian noise of the same norm,
  renormalised, cosine ~0.7 to its original; sparse: 80% of the original's terms). Queries: the
  300 SciFact test queries; with ``--hnsw-ef``, also its train queries at each ef on the same
  index (what a setting is chosen by).
- ``synthetic``: 2,000 topic clusters; each point is its cluster's centre plus noise (dense) and
  a mix of the cluster's topic terms and Zipf-distributed background terms (sparse).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from evals.metrics import percentile

DIM = 384
MODES = ("dense", "sparse", "hybrid", "hybrid_filtered")
FILTER = {"path": "/bench/3.txt"}


# -- data ------------------------------------------------------------------------------------


def scifact_base(data_dir: Path, dataset: Path) -> dict[str, Any]:
    """SciFact chunk and query vectors (test queries, and train queries under ``train_*``),
    computed once and cached as .npz (embeddings via the cache)."""
    cache = data_dir / "evals" / "bench" / "scifact-base.npz"
    if cache.is_file():
        loaded = np.load(cache, allow_pickle=False)
        base = {key: loaded[key] for key in loaded.files}
        if "train_query_dense" not in base:  # cached before the train queries were added
            base.update(_query_vectors(dataset, data_dir, "train", prefix="train_"))
            np.savez(cache, **base)
        return base
    from evals.beir import load_beir
    from tools.embeddings import CachedEmbeddings, LocalEmbeddings
    from tools.ingest import Chunker
    from tools.ingest.loaders import load_file
    from tools.sparse import Bm25Encoder

    beir = load_beir(dataset, "test")
    chunker, encoder = Chunker(), Bm25Encoder()
    texts = [c.index_text for d in load_file(beir.corpus_path).documents for c in chunker.split(d, "bench")]
    embeddings = CachedEmbeddings(LocalEmbeddings(), data_dir / "cache" / "embeddings.sqlite")
    dense = embeddings.embed_array(texts)
    avgdl = encoder.average_length(texts)
    sparse = [encoder.encode_document(t, avgdl) for t in texts]
    queries = list(beir.queries.values())
    query_sparse = [encoder.encode_query(q) for q in queries]
    base = {
        "dense": dense.astype(np.float32),
        "sparse_ptr": np.cumsum([0] + [len(s) for s in sparse]),
        "sparse_idx": np.array([i for s in sparse for i in s.indices], dtype=np.uint32),
        "sparse_val": np.array([v for s in sparse for v in s.values], dtype=np.float32),
        "query_dense": embeddings.embed_array(queries).astype(np.float32),
        "query_ptr": np.cumsum([0] + [len(s) for s in query_sparse]),
        "query_idx": np.array([i for s in query_sparse for i in s.indices], dtype=np.uint32),
        "query_val": np.array([v for s in query_sparse for v in s.values], dtype=np.float32),
    }
    base.update(_query_vectors(dataset, data_dir, "train", prefix="train_"))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **base)
    return base


def _query_vectors(dataset: Path, data_dir: Path, split: str, *, prefix: str) -> dict[str, np.ndarray]:
    """Dense and BM25 query vectors of one split's queries."""
    from evals.beir import load_beir
    from tools.embeddings import CachedEmbeddings, LocalEmbeddings
    from tools.sparse import Bm25Encoder

    queries = list(load_beir(dataset, split).queries.values())
    encoder = Bm25Encoder()
    embeddings = CachedEmbeddings(LocalEmbeddings(), data_dir / "cache" / "embeddings.sqlite")
    sparse = [encoder.encode_query(q) for q in queries]
    return {
        f"{prefix}query_dense": embeddings.embed_array(queries).astype(np.float32),
        f"{prefix}query_ptr": np.cumsum([0] + [len(v) for v in sparse]),
        f"{prefix}query_idx": np.array([i for v in sparse for i in v.indices], dtype=np.uint32),
        f"{prefix}query_val": np.array([x for v in sparse for x in v.values], dtype=np.float32),
    }


class Collection:
    """Points of one benchmark collection, generated lazily in batches (memory stays flat)."""

    def __init__(self, kind: str, size: int, base: dict[str, Any] | None, seed: int = 0) -> None:
        self.kind, self.size, self.base = kind, size, base
        self.rng = np.random.default_rng(seed)
        if kind == "synthetic":
            centres = self.rng.standard_normal((2000, DIM)).astype(np.float32)
            self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
            self.topics = self.rng.integers(0, 30_000, (2000, 100))

    def batch(self, start: int, stop: int) -> tuple[np.ndarray, list[tuple[list[int], list[float]]]]:
        n = stop - start
        if self.kind == "synthetic":
            cluster = self.rng.integers(0, 2000, n)
            dense = self.centres[cluster] + self.rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
            sparse = [self._synthetic_terms(c) for c in cluster]
        else:
            assert self.base is not None
            count = len(self.base["dense"])
            source = np.where(np.arange(start, stop) < count, np.arange(start, stop), self.rng.integers(0, count, n))
            dense = self.base["dense"][source].copy()
            copies = np.arange(start, stop) >= count
            noise = self.rng.standard_normal((int(copies.sum()), DIM)).astype(np.float32) / np.sqrt(DIM)
            dense[copies] += noise
            sparse = [self._scifact_terms(int(j), bool(c)) for j, c in zip(source, copies, strict=True)]
        dense /= np.linalg.norm(dense, axis=1, keepdims=True)
        return dense, sparse

    def queries(self, n: int, split: str = "test") -> tuple[np.ndarray, list[tuple[list[int], list[float]]]]:
        """``n`` queries: SciFact's test queries (``split="train"``: its train queries, for
        choosing settings), or for ``synthetic`` queries drawn from the clusters."""
        rng = np.random.default_rng(12345)
        if self.kind == "synthetic":
            cluster = rng.integers(0, 2000, n)
            dense = self.centres[cluster] + rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
            dense /= np.linalg.norm(dense, axis=1, keepdims=True)
            terms = [sorted({int(t) for t in rng.choice(self.topics[c], 4)}) for c in cluster]
            return dense, [(idx, [1.0] * len(idx)) for idx in terms]
        assert self.base is not None
        pre = "train_" if split == "train" else ""
        ptr, idx, val = self.base[f"{pre}query_ptr"], self.base[f"{pre}query_idx"], self.base[f"{pre}query_val"]
        picked = list(range(min(n, len(self.base[f"{pre}query_dense"]))))
        sparse = [(idx[ptr[i] : ptr[i + 1]].tolist(), val[ptr[i] : ptr[i + 1]].tolist()) for i in picked]
        return self.base[f"{pre}query_dense"][picked], sparse

    def _synthetic_terms(self, cluster: int) -> tuple[list[int], list[float]]:
        topic = self.rng.choice(self.topics[cluster], int(self.rng.integers(10, 30)))
        background = (self.rng.zipf(1.3, int(self.rng.integers(10, 30))) % 30_000) + 30_000
        terms, counts = np.unique(np.concatenate([topic, background]), return_counts=True)
        return terms.tolist(), (counts * 2.2 / (counts + 1.2)).tolist()

    def _scifact_terms(self, j: int, copy: bool) -> tuple[list[int], list[float]]:
        assert self.base is not None
        ptr = self.base["sparse_ptr"]
        idx, val = self.base["sparse_idx"][ptr[j] : ptr[j + 1]], self.base["sparse_val"][ptr[j] : ptr[j + 1]]
        if copy and len(idx) > 1:
            keep = self.rng.random(len(idx)) < 0.8
            idx, val = idx[keep], val[keep]
        return idx.tolist(), val.tolist()


# -- one measurement (child process) ---------------------------------------------------------


def measure(
    kind: str,
    size: int,
    backend: str,
    queries: int,
    folder: Path,
    base_path: Path | None,
    hnsw_efs: list[int] | None = None,
    hnsw_m: int = 16,
    hnsw_ef_construct: int = 100,
) -> dict[str, Any]:
    """One collection of one size on one backend; with ``hnsw_efs`` the queries run once per
    HNSW ``ef`` on the same index (the first one's numbers are the row's)."""
    from tools.sparse import SparseVector
    from tools.store import EdgeStore, Point, QdrantStore, VectorStore

    base = dict(np.load(base_path)) if base_path else None
    collection = Collection(kind, size, base)
    rss_before = _rss_mb()
    store: VectorStore = (
        EdgeStore(folder / "edge", hnsw_m=hnsw_m, hnsw_ef_construct=hnsw_ef_construct)
        if backend == "embedded"
        else QdrantStore(folder / "qdrant")
    )
    store.create_source("bench", description="benchmark", dimension=DIM, embedding_model="bench", bm25_avgdl=100.0)
    text = "lorem ipsum dolor sit amet " * 16  # ~430 characters of chunk text per payload

    ingest_seconds = 0.0
    for start in range(0, size, 2048):
        stop = min(start + 2048, size)
        dense, sparse = collection.batch(start, stop)  # generating data is not part of the ingest
        tick = time.perf_counter()
        rows = dense.tolist()
        points = [
            Point(
                f"00000000-0000-0000-0000-{i:012d}",
                rows[i - start],
                SparseVector(*sparse[i - start]),
                {
                    "source": "bench",
                    "doc_id": f"d{i // 2}",
                    "path": f"/bench/{i % 10}.txt",
                    "title": f"chunk {i}",
                    "chunk_index": i % 2,
                    "text": text,
                    "metadata": {},
                },
            )
            for i in range(start, stop)
        ]
        store.upsert("bench", points)
        ingest_seconds += time.perf_counter() - tick
    tick = time.perf_counter()
    indexed = store.refresh_index("bench", force=True)
    index_seconds = time.perf_counter() - tick if indexed else 0.0

    q_dense, q_sparse = collection.queries(queries)
    # One unmeasured pass first: the shard was just reopened after the index build, and its pages
    # come in on the first queries (the first ef swept would otherwise pay for them).
    _query_phase(store, q_dense, q_sparse, "warm-up", hnsw_efs[0] if hnsw_efs else None)
    efs: list[int | None] = list(hnsw_efs) if hnsw_efs else [None]
    sweep = {ef: _query_phase(store, q_dense, q_sparse, backend, ef) for ef in efs}
    latencies, recall = next(iter(sweep.values()))
    # SciFact's train queries at each ef too, on the same index: what a setting is chosen by.
    train = {}
    if hnsw_efs and kind == "scifact":
        t_dense, t_sparse = collection.queries(queries, split="train")
        train = {ef: _query_phase(store, t_dense, t_sparse, backend, ef) for ef in hnsw_efs}
    store.close()
    result: dict[str, Any] = {
        "kind": kind,
        "size": size,
        "backend": backend,
        "ingest_s": round(ingest_seconds, 2),
        "ingest_points_per_s": round(size / ingest_seconds),
        "index_s": round(index_seconds, 2),
        "queries": len(q_dense),
        "peak_rss_mb": round(_peak_rss_mb()),
        "store_rss_mb": round(_peak_rss_mb() - rss_before),
        # Edge builds the index in a child process (its optimizer holds the GIL): that child's peak.
        "hnsw_m": hnsw_m,
        "hnsw_ef_construct": hnsw_ef_construct,
        "index_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "disk_mb": round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20),
    }
    for mode in MODES:
        result[f"{mode}_p50_ms"] = round(percentile(latencies[mode], 50), 2)
        result[f"{mode}_p95_ms"] = round(percentile(latencies[mode], 95), 2)
    for mode, values in recall.items():
        result[f"{mode}_recall@10"] = round(float(np.mean(values)), 4) if values else None
    if hnsw_efs:
        result["hnsw_ef"] = hnsw_efs[0]
        result["ef_sweep"] = [
            {
                "queries": split,
                "hnsw_ef": ef,
                **{f"{mode}_p50_ms": round(percentile(lat[mode], 50), 2) for mode in MODES},
                **{f"{mode}_recall@10": round(float(np.mean(v)), 4) if v else None for mode, v in rec.items()},
            }
            for split, runs in (("train", train), ("test" if kind == "scifact" else "generated", sweep))
            for ef, (lat, rec) in runs.items()
        ]
    return result


def _query_phase(
    store: Any, q_dense: np.ndarray, q_sparse: list[Any], backend: str, ef: int | None
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Latency per mode and recall@10 against exact search (Edge) of every query, at HNSW ``ef``
    (``None``: the store's own)."""
    from tools.sparse import SparseVector
    from tools.store import EdgeStore

    if ef is not None and isinstance(store, EdgeStore):
        store.hnsw_ef = ef
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
    recall: dict[str, list[float]] = {"dense": [], "hybrid": []}
    for i in range(len(q_dense)):
        vector, terms = q_dense[i].tolist(), SparseVector(*q_sparse[i])
        args: dict[str, dict[str, Any]] = {
            "dense": {"dense": vector},
            "sparse": {"sparse": terms},
            "hybrid": {"dense": vector, "sparse": terms},
            "hybrid_filtered": {"dense": vector, "sparse": terms, "where": FILTER},
        }
        for mode in MODES:
            tick = time.perf_counter()
            hits = store.search("bench", limit=10, prefetch_limit=100, rrf_k=10, **args[mode])
            latencies[mode].append((time.perf_counter() - tick) * 1000)
            if mode in recall and backend == "embedded":
                exact = store.search("bench", limit=10, prefetch_limit=100, rrf_k=10, exact=True, **args[mode])
                recall[mode].append(len({h.id for h in hits} & {h.id for h in exact}) / max(1, len(exact)))
    return latencies, recall


def _rss_mb() -> float:
    return _proc_status_mb("VmRSS:")


def _peak_rss_mb() -> float:
    # VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across exec, so a worker started by
    # a parent that loaded the embedding model would report the parent's peak.
    return _proc_status_mb("VmHWM:")


def _proc_status_mb(field: str) -> float:
    with open("/proc/self/status") as status:  # noqa: PTH123 - a proc file
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


# -- driver ----------------------------------------------------------------------------------


def scifact_ndcg(dataset: Path, data_dir: Path) -> dict[str, Any]:
    """nDCG@10 of SciFact's test queries through each backend's retrieval-eval store (exact, and
    HNSW for Edge), ingesting the corpus if it is not cached."""
    from evals.beir import load_beir
    from evals.retrieval import index_folder, ingest_corpus, run_queries
    from tools.embeddings import LocalEmbeddings, model_identity
    from tools.ingest import Chunker
    from tools.retrieval import Retriever

    beir = load_beir(dataset, "test")
    embeddings, chunker = LocalEmbeddings(), Chunker()
    results: dict[str, Any] = {}
    for backend in ("local", "embedded"):
        folder = index_folder(data_dir, beir, chunker, model_identity(embeddings), backend)
        store, _ = ingest_corpus(
            folder, beir, embeddings, chunker, source="beir_scifact", backend=backend, time_model=False
        )
        with store:
            retriever = Retriever(store=store, embeddings=embeddings, sources=["beir_scifact"])
            results[backend] = run_queries(retriever, beir, ["dense", "sparse", "hybrid"])
        if backend == "embedded":  # the same store with its HNSW index built, in a scratch copy
            with tempfile.TemporaryDirectory() as scratch:
                copy = Path(scratch) / "copy"
                shutil.copytree(folder, copy)
                store, _ = ingest_corpus(
                    copy, beir, embeddings, chunker, source="beir_scifact", backend=backend, build_index=True
                )
                with store:
                    retriever = Retriever(store=store, embeddings=embeddings, sources=["beir_scifact"])
                    results["embedded_hnsw"] = run_queries(retriever, beir, ["dense", "sparse", "hybrid"])
    results["hybrid_ndcg_diff_embedded_vs_local"] = round(
        results["embedded"]["hybrid"]["ndcg@10"] - results["local"]["hybrid"]["ndcg@10"], 4
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,300000")
    parser.add_argument("--kinds", default="scifact,synthetic")
    parser.add_argument("--backends", default="embedded,local")
    parser.add_argument("--queries", type=int, default=100, help="queries per mode (Edge)")
    parser.add_argument("--local-queries", type=int, default=20, help="queries per mode for local mode above 10k")
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/beir_scifact"))
    parser.add_argument("--data-dir", type=Path, default=Path(".arag"))
    parser.add_argument("--skip-ndcg", action="store_true", help="skip the SciFact nDCG comparison")
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument(
        "--hnsw-ef", default="", help="Edge: query at each of these HNSW ef values on the same index (e.g. 128,256)"
    )
    parser.add_argument("--hnsw-m", type=int, default=16, help="Edge: HNSW links per node (the build)")
    parser.add_argument("--hnsw-ef-construct", type=int, default=100, help="Edge: HNSW build candidates")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:  # child process: one measurement, printed as JSON
        kind, size, backend, queries, base = args.worker
        with tempfile.TemporaryDirectory(dir=args.data_dir) as folder:
            efs = [int(e) for e in args.hnsw_ef.split(",") if e]
            result = measure(
                kind,
                int(size),
                backend,
                int(queries),
                Path(folder),
                Path(base) if base != "-" else None,
                efs or None,
                hnsw_m=args.hnsw_m,
                hnsw_ef_construct=args.hnsw_ef_construct,
            )
        print(json.dumps(result))
        return 0

    args.data_dir.mkdir(parents=True, exist_ok=True)
    kinds = args.kinds.split(",")
    base_path = "-"
    if "scifact" in kinds:
        scifact_base(args.data_dir, args.dataset)
        base_path = str(args.data_dir / "evals" / "bench" / "scifact-base.npz")
    rows = []
    for kind in kinds:
        for size in (int(s) for s in args.sizes.split(",")):
            for backend in args.backends.split(","):
                queries = args.queries if backend == "embedded" or size <= 10_000 else args.local_queries
                command = [sys.executable, "-m", "evals.bench_store", "--data-dir", str(args.data_dir)]
                command += ["--hnsw-ef", args.hnsw_ef, "--hnsw-m", str(args.hnsw_m)]
                command += ["--hnsw-ef-construct", str(args.hnsw_ef_construct)]
                command += ["--worker", kind, str(size), backend, str(queries), base_path if kind == "scifact" else "-"]
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
                if done.returncode != 0:
                    print(f"{kind} {size} {backend}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                    continue
                row = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(_line(row), f"({time.perf_counter() - started:.0f} s)", flush=True)
                for point in row.get("ef_sweep", []):
                    print(
                        f"    ef {point['hnsw_ef']}: "
                        + ", ".join(f"{k} {v}" for k, v in point.items() if k != "hnsw_ef")
                    )
    summary: dict[str, Any] = {"runs": rows, "speedup": _speedups(rows)}
    for item in summary["speedup"]:
        print(item)
    if not args.skip_ndcg:
        summary["scifact"] = scifact_ndcg(args.dataset, args.data_dir)
        print(json.dumps(summary["scifact"], indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


def _line(row: dict[str, Any]) -> str:
    recall = (
        f" recall@10 dense {row['dense_recall@10']} hybrid {row['hybrid_recall@10']}" if row["dense_recall@10"] else ""
    )
    return (
        f"{row['kind']:9} {row['size']:>7} {row['backend']:8} ingest {row['ingest_s']:6.1f} s "
        f"({row['ingest_points_per_s']}/s) index {row['index_s']:5.1f} s | p50 ms dense {row['dense_p50_ms']} "
        f"sparse {row['sparse_p50_ms']} hybrid {row['hybrid_p50_ms']} filtered {row['hybrid_filtered_p50_ms']} | "
        f"peak {row['peak_rss_mb']} MB (index build {row.get('index_peak_rss_mb', '?')} MB){recall}"
    )


def _speedups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_key = {(r["kind"], r["size"], r["backend"]): r for r in rows}
    out = []
    for (kind, size, backend), row in by_key.items():
        other = by_key.get((kind, size, "local"))
        if backend != "embedded" or other is None:
            continue
        item: dict[str, Any] = {"kind": kind, "size": size}
        for mode in MODES:
            item[f"{mode}_p50_speedup"] = round(other[f"{mode}_p50_ms"] / max(row[f"{mode}_p50_ms"], 1e-6), 1)
        item["ingest_speedup"] = round(other["ingest_s"] / max(row["ingest_s"], 1e-6), 1)
        out.append(item)
    return out


if __name__ == "__main__":
    sys.exit(main())
