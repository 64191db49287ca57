"""The ONNX Runtime backends of the bundled model: the export from the package's weights, its
checksums, agreement with sentence-transformers, identities that keep backends apart, and a
command line that does not load the model stack where it needs none."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from agents.testing import FakeEmbeddings
from tools import onnx_export
from tools.embeddings import CachedEmbeddings, LocalEmbeddings, model_identity
from tools.search import Searcher, mismatch_message
from tools.store import QdrantStore

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "The cat sat on the mat.",
    "A kitten rested on the rug.",
    "Quarterly revenue grew by 8% on strong cloud demand.",
    "",  # an empty text still gets a unit vector
    "word " * 400,  # past the model's 256 word pieces: truncated, as sentence-transformers does
]


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export (fp32 and int8) for this module."""
    cache = tmp_path_factory.mktemp("models")
    onnx_export.ensure_model(cache, "int8")
    return cache


def test_backends_are_named_apart_and_checked() -> None:
    assert LocalEmbeddings(backend="torch").model_name == "all-MiniLM-L6-v2"
    assert LocalEmbeddings(backend="onnx").model_name == "all-MiniLM-L6-v2@onnx"
    assert LocalEmbeddings(backend="onnx-int8").model_name == "all-MiniLM-L6-v2@onnx-int8"
    with pytest.raises(ValueError, match="unknown embedding backend 'cuda'"):
        LocalEmbeddings(backend="cuda")  # type: ignore[arg-type]


def test_the_cache_keeps_backends_apart(tmp_path: Path) -> None:
    onnx = CachedEmbeddings(LocalEmbeddings(backend="onnx"), tmp_path / "c.sqlite")
    torch = CachedEmbeddings(LocalEmbeddings(backend="torch"), tmp_path / "c.sqlite")
    assert onnx.namespace != torch.namespace
    assert onnx._key("same text") != torch._key("same text")


@pytest.mark.model
def test_fp32_equals_sentence_transformers(model_cache: Path, real_embeddings: LocalEmbeddings) -> None:
    onnx = LocalEmbeddings(backend="onnx", model_cache=model_cache).embed_array(TEXTS)
    torch = LocalEmbeddings(backend="torch").embed_array(TEXTS)
    assert onnx.shape == (len(TEXTS), 384)
    assert onnx.dtype == np.float32
    assert float(np.abs(onnx - torch).max()) < 1e-5
    assert all(math.isclose(float(np.linalg.norm(v)), 1.0, rel_tol=1e-4) for v in onnx)


@pytest.mark.model
def test_int8_stays_close_and_keeps_meaning(model_cache: Path) -> None:
    fp32 = LocalEmbeddings(backend="onnx", model_cache=model_cache).embed_array(TEXTS)
    int8 = LocalEmbeddings(backend="onnx-int8", model_cache=model_cache).embed_array(TEXTS)
    cosines = (fp32 * int8).sum(axis=1)
    assert float(cosines.min()) > 0.97
    cat, kitten, revenue = int8[:3]
    assert cat @ kitten > cat @ revenue + 0.2


@pytest.mark.model
def test_order_and_batches_do_not_change_vectors(model_cache: Path) -> None:
    """Texts are sorted by length and padded per batch: the result is in the caller's order and
    the same whatever the batch size (padding is masked)."""
    one = LocalEmbeddings(backend="onnx", model_cache=model_cache, batch_size=1).embed_array(TEXTS)
    many = LocalEmbeddings(backend="onnx", model_cache=model_cache, batch_size=4).embed_array(TEXTS)
    assert float(np.abs(one - many).max()) < 1e-5
    shuffled = LocalEmbeddings(backend="onnx", model_cache=model_cache).embed_array(TEXTS[::-1])
    assert float(np.abs(shuffled[::-1] - many).max()) < 1e-5


def test_the_export_is_checksummed_and_reused(model_cache: Path) -> None:
    manifest = json.loads((model_cache / "manifest.json").read_text())
    assert manifest["export_version"] == onnx_export.EXPORT_VERSION
    assert len(manifest["weights"]["sha256"]) == 64
    assert set(manifest["files"]) == {"model-fp32.onnx", "model-int8.onnx"}
    assert onnx_export.verify(model_cache) == {"model-fp32.onnx": True, "model-int8.onnx": True}
    before = {p.name: p.stat().st_mtime_ns for p in model_cache.glob("*.onnx")}
    onnx_export.ensure_model(model_cache, "int8")
    assert {p.name: p.stat().st_mtime_ns for p in model_cache.glob("*.onnx")} == before  # not rebuilt


def test_a_damaged_or_outdated_export_is_rebuilt(tmp_path: Path, model_cache: Path) -> None:
    cache = tmp_path / "models"
    cache.mkdir()
    for name in ("manifest.json", "model-fp32.onnx"):
        (cache / name).write_bytes((model_cache / name).read_bytes())
    manifest = json.loads((cache / "manifest.json").read_text())
    del manifest["files"]["model-int8.onnx"]
    (cache / "manifest.json").write_text(json.dumps(manifest))
    fp32 = cache / "model-fp32.onnx"
    os.utime(fp32, ns=(manifest["files"]["model-fp32.onnx"]["mtime_ns"],) * 2)
    good = fp32.read_bytes()

    # Same size, other bytes, a new time: the hash tells, and the file is rebuilt.
    fp32.write_bytes(good[:-8] + b"\0" * 8)
    assert onnx_export.verify(cache) == {"model-fp32.onnx": False}
    onnx_export.ensure_model(cache, "fp32")
    assert fp32.read_bytes() == good  # the export is deterministic
    assert onnx_export.verify(cache) == {"model-fp32.onnx": True}

    # Touched only: the hash still matches, nothing is rebuilt.
    os.utime(fp32, ns=(1, 1))
    onnx_export.ensure_model(cache, "fp32")
    assert fp32.stat().st_mtime_ns == 1

    # An older export version: everything is rebuilt.
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["export_version"] = 0
    (cache / "manifest.json").write_text(json.dumps(manifest))
    onnx_export.ensure_model(cache, "fp32")
    assert fp32.stat().st_mtime_ns != 1
    assert json.loads((cache / "manifest.json").read_text())["export_version"] == onnx_export.EXPORT_VERSION


def test_a_store_of_another_backend_is_refused_with_the_ways_out() -> None:
    with QdrantStore(":memory:") as store:
        store.create_source("kb", dimension=384, embedding_model="all-MiniLM-L6-v2", description="", bm25_avgdl=1.0)
        searcher = Searcher(store=store, embeddings=LocalEmbeddings(backend="onnx"))
        with pytest.raises(ValueError, match="ARAG_EMBEDDING_BACKEND=torch") as caught:
            searcher.search("anything")
    assert "torch backend of all-MiniLM-L6-v2" in str(caught.value)
    assert "re-embed" in str(caught.value)
    other = mismatch_message("kb", "bge-small", "all-MiniLM-L6-v2@onnx")
    assert "ARAG_EMBEDDING_MODEL" in other
    assert model_identity(FakeEmbeddings()) == "fake-hash-64"


_LOADED = textwrap.dedent(
    """
    import sys
    from agents.cli import main
    code = main(sys.argv[1:])
    heavy = ("torch", "transformers", "sentence_transformers", "onnxruntime", "qdrant_client", "langgraph")
    heavy += ("numpy", "rich.progress")  # not the model stack, but 0.1 s that --help and a cached search skip
    heavy += ("agents.react_agent",)  # with the RLM agent: 0.1 s that the RAG agent's `ask` skips
    print("LOADED", [m for m in heavy if m in sys.modules], "CODE", code, file=sys.stderr)
    """
)


def _loaded(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    line = next(line for line in done.stderr.splitlines() if line.startswith("LOADED"))
    assert line.endswith("CODE 0"), done.stderr[-2000:]
    return line


@pytest.mark.model
def test_the_command_line_loads_no_model_stack_where_it_needs_none(tmp_path: Path, model_cache: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARAG_")}
    env |= {"ARAG_DATA_DIR": str(tmp_path / "data"), "ARAG_MODEL_CACHE": str(model_cache)}
    env["ARAG_EMBEDDING_BACKEND"] = "onnx"
    assert _loaded(["--help"], env).startswith("LOADED []")
    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "bees.md").write_text("# Bees\n\nThe waggle dance tells other bees where the flowers are.\n")
    _loaded(["ingest", str(corpus), "--source", "kb", "-q"], env)
    assert _loaded(["sources"], env).startswith("LOADED []")
    first = _loaded(["search", "what does the waggle dance tell"], env)
    assert "torch" not in first
    assert "onnxruntime" in first  # the query was new: embedded with ONNX Runtime, no torch
    assert _loaded(["search", "what does the waggle dance tell"], env).startswith("LOADED []")  # cached vector
    asked = _loaded(["ask", "What does the waggle dance tell other bees?", "-q"], env)
    assert "torch" not in asked
    assert "transformers" not in asked
    assert "agents.react_agent" not in asked
