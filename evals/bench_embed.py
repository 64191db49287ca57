"""Embedding backends side by side, and what they do to the command line and the server.

``throughput``: ``--chunks`` SciFact chunks (the project's chunker over the BEIR corpus, a seeded
sample) embedded by each backend (``torch``, ``onnx``, ``onnx-int8``), each in a child process of
its own (one warm-up batch first, then timed), with that child's peak RSS; ratios against torch
measured in the same run, and how close each backend's vectors are to torch's (max absolute
difference, least cosine).

``cli``: per backend, the demo corpus (``examples/corpus``) ingested into a data folder of its own,
then cold processes, median of ``--repeats`` runs each: ``arag --help``, ``arag sources``, ``arag
search`` with a cached query vector (warmed by one run first) and ``arag ask`` with questions never
asked before (a new one per run, so the query embedding is computed each time), then ``arag ask``
again while ``arag serve`` runs on the same data folder (the question is handed to the server:
:mod:`agents._handoff`). Each run also says whether torch, transformers, onnxruntime,
qdrant-client or LangGraph were imported. First, the floor under any agent's process: a cold
``import langgraph.graph`` alone.

``ingest``: per backend, ``arag ingest`` of the whole SciFact corpus (5,183 documents, 10,460
chunks) into an empty data folder, cold: wall time and the peak RSS (VmHWM) of the ``arag``
process; the loaders' child processes are reported apart (the largest one's peak).

``serve``: per backend, ``arag serve --port 0`` from spawn to the first line that says it runs,
and to the first complete chat answer; resident memory when idle after it.

The CPU's vector extensions are printed first: int8 pays off where the cores have VNNI
(``avx512_vnni``/``avx_vnni``), barely on AVX2 alone.

    python -m evals.bench_embed --json runs/bench-embed.json
    python -m evals.bench_embed --only cli,serve --backends torch,onnx
    python -m evals.bench_embed --only ingest --json runs/bench-embed-ingest.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

from evals.bench_serve import ServerProcess, ingest

BACKENDS = ("torch", "onnx", "onnx-int8")
SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir_scifact"
ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "sentence_transformers", "onnxruntime", "qdrant_client", "langgraph")

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from pathlib import Path
    from tools.embeddings import LocalEmbeddings
    backend, texts_path, out_path, cache = sys.argv[1:5]
    texts = json.loads(Path(texts_path).read_text())
    model = LocalEmbeddings(batch_size=32, backend=backend, model_cache=Path(cache))
    model.embed_array(texts[:32])  # load and warm up
    started = time.perf_counter()
    vectors = model.embed_array(texts)
    seconds = time.perf_counter() - started
    np.save(out_path, vectors)
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
    print(json.dumps({"seconds": seconds, "peak_mb": round(peak / 1024, 1)}))
    """
)

_PROBE = textwrap.dedent(
    """
    import runpy, sys, json, atexit
    heavy = {heavy!r}
    def report():
        sys.stderr.write("\\nLOADED " + json.dumps([m for m in heavy if m in sys.modules]) + "\\n")
    atexit.register(report)
    sys.argv = ["arag", *sys.argv[1:]]
    from agents.cli import main
    code = main()  # as the console script runs it (sys.argv above), collector settings included
    report(); atexit.unregister(report)
    sys.exit(code)
    """
).format(heavy=HEAVY)


_PEAK_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    sys.argv = ["arag", *sys.argv[1:]]
    from agents.cli import main
    try:
        code = main()
    finally:
        peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        peaks = {"peak_mb": round(peak / 1024, 1), "children_peak_mb": round(children / 1024, 1)}
        sys.stderr.write("\\nPEAK " + json.dumps(peaks) + "\\n")
    sys.exit(code)
    """
)


def cpu_flags() -> dict[str, Any]:
    """Model name and the vector extensions that decide int8's pay-off."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return {"model": model, "cores": os.cpu_count(), "flags": [f for f in wanted if f in flags]}


def scifact_chunks(count: int, seed: int) -> list[str]:
    """A seeded sample of ``count`` chunks of the SciFact corpus, as ingestion cuts them."""
    from tools.ingest import Chunker
    from tools.ingest.loaders import Document

    chunker = Chunker()
    texts: list[str] = []
    with (SCIFACT / "corpus.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            document = Document(str(row["_id"]), row["text"], str(row.get("title", "")), "")
            texts.extend(chunk.index_text for chunk in chunker.split(document, "scifact"))  # what ingest embeds
    random.Random(seed).shuffle(texts)  # noqa: S311 - a reproducible sample, not a secret
    return texts[:count]


def throughput(backends: list[str], count: int, seed: int, cache: Path) -> dict[str, Any]:
    import numpy as np

    texts = scifact_chunks(count, seed)
    rows: dict[str, Any] = {}
    vectors: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        texts_path = Path(tmp) / "texts.json"
        texts_path.write_text(json.dumps(texts))
        for backend in backends:
            out = Path(tmp) / f"{backend}.npy"
            done = subprocess.run(  # noqa: S603
                [sys.executable, "-c", _CHILD, backend, str(texts_path), str(out), str(cache)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"{backend} failed: {done.stderr[-2000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["chunks_per_s"] = round(len(texts) / row["seconds"], 2)
            rows[backend] = row
            vectors[backend] = np.load(out)
            print(f"  {backend:<10} {row['chunks_per_s']:>7.2f} chunks/s  peak {row['peak_mb']} MB", flush=True)
    if "torch" in rows:
        for backend, row in rows.items():
            row["x_torch"] = round(row["chunks_per_s"] / rows["torch"]["chunks_per_s"], 3)
            diff = vectors[backend] - vectors["torch"]
            row["max_abs_diff"] = float(abs(diff).max())
            row["min_cosine"] = float((vectors[backend] * vectors["torch"]).sum(1).min())
    return {"chunks": len(texts), "tokens_note": "chunks of at most 1,000 characters", "backends": rows}


def _timed(args: list[str], env: dict[str, str], probe: str = _PROBE) -> tuple[float, list[str], int]:
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", probe, *args], env=env, capture_output=True, text=True, cwd=ROOT, check=False
    )
    seconds = time.perf_counter() - started
    loaded: list[str] = next(
        (json.loads(line[7:]) for line in done.stderr.splitlines() if line.startswith("LOADED ")), []
    )
    return seconds, loaded, done.returncode


def _row(backend: str, name: str, runs: list[tuple[float, list[str], int]]) -> dict[str, Any]:
    """One command's cold runs (seconds, modules loaded, exit code) as a row, printed."""
    row = {
        "median_s": round(statistics.median(s for s, _, _ in runs), 3),
        "runs_s": [round(s, 3) for s, _, _ in runs],
        "loaded": sorted({m for _, loaded, _ in runs for m in loaded}),
        "failed": sum(1 for _, _, code in runs if code != 0),
    }
    print(f"  {backend:<10} {name:<24} median {row['median_s']:.3f} s  loads {row['loaded']}")
    return row


_FLOOR = "import gc; gc.set_threshold(20_000, 10, 10); import langgraph.graph"
"""What every agent's process pays before it does anything: LangGraph's import (which imports
langchain-core's tracers and LangSmith's run trees), with the console script's collector setting."""


def cli(backends: list[str], repeats: int, base: Path, cache: Path) -> dict[str, Any]:
    floor = [_timed([], dict(os.environ), _FLOOR) for _ in range(repeats)]
    results: dict[str, Any] = {"floor": _row("-", "import langgraph.graph", floor)}
    for backend in backends:
        data = base / f"cli-{backend}"
        data.mkdir(parents=True, exist_ok=True)
        extra = {"ARAG_EMBEDDING_BACKEND": backend, "ARAG_MODEL_CACHE": str(cache)}
        ingest(data, extra=extra)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ARAG_")}, "ARAG_DATA_DIR": str(data)}
        env.update(extra)
        _timed(["search", "how do bees tell others where flowers are"], env)  # caches the query vector
        stamp = time.time_ns()
        unseen = [f"When did Apollo 11 land on the Moon? (run {stamp}-{i})" for i in range(repeats)]
        commands = {
            "help": [["--help"]] * repeats,
            "sources": [["sources"]] * repeats,
            "search (cached vector)": [["search", "how do bees tell others where flowers are"]] * repeats,
            "ask (unseen question)": [["ask", question, "-q"] for question in unseen],
        }
        rows: dict[str, Any] = {}
        for name, argvs in commands.items():
            rows[name] = _row(backend, name, [_timed(argv, env) for argv in argvs])
        # The same, with `arag serve` running on the data folder: `arag ask` hands the question over.
        with ServerProcess(data, extra).running():
            served = [_timed(["ask", f"{question} (served)", "-q"], env) for question in unseen]
        rows["ask via arag serve"] = _row(backend, "ask via arag serve", served)
        results[backend] = rows
    return results


def ingest_peak(backends: list[str], base: Path, cache: Path) -> dict[str, Any]:
    """``arag ingest`` of the SciFact corpus per backend, cold, into an empty data folder."""
    results: dict[str, Any] = {}
    for backend in backends:
        data = base / f"ingest-{backend}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARAG_")}
        env.update({"ARAG_DATA_DIR": str(data), "ARAG_EMBEDDING_BACKEND": backend, "ARAG_MODEL_CACHE": str(cache)})
        argv = ["ingest", str(SCIFACT / "corpus.jsonl"), "--source", "scifact"]
        started = time.perf_counter()
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-c", _PEAK_PROBE, *argv], env=env, capture_output=True, text=True, cwd=ROOT, check=False
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"ingest with {backend} failed: {done.stderr[-2000:]}")
        peak = next(json.loads(line[5:]) for line in done.stderr.splitlines() if line.startswith("PEAK "))
        results[backend] = {"seconds": round(seconds, 1), **peak, "report": done.stdout.strip().splitlines()[-1]}
        print(f"  {backend:<10} {seconds:>7.1f} s  peak {peak['peak_mb']} MB (loaders {peak['children_peak_mb']} MB)")
    return results


def serve(backends: list[str], base: Path, cache: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for backend in backends:
        data = base / f"cli-{backend}"
        data.mkdir(parents=True, exist_ok=True)
        extra = {"ARAG_EMBEDDING_BACKEND": backend, "ARAG_MODEL_CACHE": str(cache)}
        ingest(data, extra=extra)
        server = ServerProcess(data, extra)
        started = time.perf_counter()
        with server.running() as url:
            listening = time.perf_counter() - started
            body = {"model": "rag", "messages": [{"role": "user", "content": "What does the waggle dance tell?"}]}
            response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
            answered = time.perf_counter() - started
            response.raise_for_status()
            time.sleep(1.0)
            idle = server.rss_mb()
        results[backend] = {
            "listening_s": round(listening, 3),
            "first_answer_s": round(answered, 3),
            "idle_rss_mb": idle,
        }
        print(f"  {backend:<10} listening {listening:.2f} s, first answer {answered:.2f} s, idle RSS {idle} MB")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--only", default="throughput,cli,serve", help="Parts to run, comma-separated.")
    parser.add_argument("--chunks", type=int, default=1000, help="SciFact chunks for the throughput part.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="Cold runs per CLI command.")
    parser.add_argument("--data-dir", type=Path, default=None, help="Where the demo stores go (default: a temp dir).")
    parser.add_argument("--model-cache", type=Path, default=None, help="ONNX export cache (default: a temp dir).")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    parts = {p.strip() for p in args.only.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        base = args.data_dir or Path(tmp)
        cache = args.model_cache or Path(tmp) / "models"
        report: dict[str, Any] = {"cpu": cpu_flags(), "backends": backends}
        print(f"cpu: {report['cpu']}")
        if "throughput" in parts:
            print("throughput (SciFact chunks):")
            report["throughput"] = throughput(backends, args.chunks, args.seed, cache)
        if "cli" in parts:
            print("cli (cold processes):")
            report["cli"] = cli(backends, args.repeats, base, cache)
        if "ingest" in parts:
            print("ingest (SciFact corpus, cold):")
            report["ingest"] = ingest_peak(backends, base, cache)
        if "serve" in parts:
            print("serve:")
            report["serve"] = serve(backends, base, cache)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
