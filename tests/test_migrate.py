"""Moving sources between backends: export/import files, store-to-store copies, and the CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from agents.cli import main
from tests.conftest import QDRANT_TEST_URL, server_store
from tests.test_edge_store import assert_same_ranking, corpus_points, fill, query_vector
from tools.sparse import Bm25Encoder
from tools.store import EdgeStore, QdrantStore
from tools.store.migrate import copy_sources, export_sources, import_sources


@pytest.fixture
def edge_store(tmp_path: Path) -> EdgeStore:
    store = EdgeStore(tmp_path / "edge")
    fill(store, corpus_points(120), name="alpha")
    fill(store, corpus_points(30, seed=5), name="beta")
    store.set_description("beta", "the second one")
    yield store  # type: ignore[misc]
    store.close()


def same_search(a: object, b: object, source: str) -> None:
    query = query_vector("penguin river")
    sparse = Bm25Encoder().encode_query("penguin river")
    for kwargs in ({"dense": query}, {"sparse": sparse}, {"dense": query, "sparse": sparse}):
        assert_same_ranking(
            a.search(source, limit=10, exact=True, **kwargs),  # type: ignore[attr-defined]
            b.search(source, limit=10, exact=True, **kwargs),  # type: ignore[attr-defined]
        )


@pytest.mark.parametrize("name", ["export.jsonl", "export.jsonl.gz"])
def test_export_then_import_into_another_backend(edge_store: EdgeStore, tmp_path: Path, name: str) -> None:
    path = tmp_path / "sub" / name
    events: list[tuple[str, int, int]] = []
    report = export_sources(edge_store, path, progress=lambda *e: events.append(e))
    assert (report.sources, report.points) == (["alpha", "beta"], 150)
    assert events[-1] == ("beta", 30, 30)
    with QdrantStore(":memory:") as target:
        imported = import_sources(target, path)
        assert (imported.sources, imported.points) == (["alpha", "beta"], 150)
        assert target.get_source("beta").description == "the second one"
        assert target.get_source("alpha").bm25_avgdl == edge_store.get_source("alpha").bm25_avgdl
        assert target.count("alpha") == 120
        same_search(edge_store, target, "alpha")
        again = import_sources(target, path)  # same ids: replaced, not duplicated
        assert again.points == 150
        assert target.count("alpha") == 120


def test_export_chosen_sources_only(edge_store: EdgeStore, tmp_path: Path) -> None:
    report = export_sources(edge_store, tmp_path / "b.jsonl", sources=["beta"])
    assert report.sources == ["beta"]
    lines = (tmp_path / "b.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["type"] == "source"
    assert len(lines) == 31


def test_copy_between_stores(edge_store: EdgeStore, tmp_path: Path) -> None:
    with QdrantStore(tmp_path / "qdrant") as target:
        report = copy_sources(edge_store, target, progress=lambda *e: None)
        assert (report.sources, report.points) == (["alpha", "beta"], 150)
        same_search(edge_store, target, "beta")
    with EdgeStore(tmp_path / "edge2") as back, QdrantStore(tmp_path / "qdrant") as origin:
        copy_sources(origin, back, sources=["alpha"])
        assert [s.name for s in back.list_sources()] == ["alpha"]
        same_search(back, edge_store, "alpha")


def test_damaged_exports_fail_clearly(tmp_path: Path) -> None:
    with QdrantStore(":memory:") as target:
        with pytest.raises(FileNotFoundError, match="arag store export"):
            import_sources(target, tmp_path / "missing.jsonl")
        (tmp_path / "points-first.jsonl").write_text(json.dumps({"type": "point", "source": "x"}) + "\n")
        with pytest.raises(ValueError, match="expected a source line"):
            import_sources(target, tmp_path / "points-first.jsonl")
        source = {"type": "source", "name": "x", "description": "", "dimension": 2, "embedding_model": "m"}
        source["bm25_avgdl"] = 1.0
        (tmp_path / "bad.jsonl").write_text(json.dumps(source) + "\n{not json\n")
        with pytest.raises(ValueError, match=r"bad.jsonl:2: not JSON"):
            import_sources(target, tmp_path / "bad.jsonl")
        other = {"type": "point", "source": "y", "id": "x", "dense": [], "sparse": {}, "payload": {}}
        (tmp_path / "mixed.jsonl").write_text(json.dumps(source) + "\n" + json.dumps(other) + "\n")
        with pytest.raises(ValueError, match="expected a point of source 'x'"):
            import_sources(target, tmp_path / "mixed.jsonl")
    with gzip.open(tmp_path / "empty.jsonl.gz", "wt") as handle:
        handle.write("")
    with QdrantStore(":memory:") as target:
        assert import_sources(target, tmp_path / "empty.jsonl.gz").points == 0


@pytest.mark.model
def test_store_commands(
    capsys: pytest.CaptureFixture[str], corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(*args: object) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    assert run("ingest", corpus_dir, "--source", "kb", "-q")[0] == 0
    code, out, _ = run("store", "info")
    assert code == 0
    assert "backend: embedded" in out
    assert "kb: 8 chunks, 384-d, 8 vectors awaiting the index" in out
    code, out, _ = run("store", "optimize", "-q")
    assert (code, out.strip()) == (0, "kb: index built")
    assert "awaiting" not in run("store", "info")[1]

    code, out, _ = run("store", "export", tmp_path / "kb.jsonl", "-q")
    assert (code, out.strip()) == (0, f"exported 8 chunks of kb to {tmp_path / 'kb.jsonl'}")
    code, out, _ = run("store", "migrate", "--to", tmp_path / "local", "--backend", "local", "-q")
    assert code == 0
    assert "copied 8 chunks of kb" in out

    monkeypatch.setenv("ARAG_STORE_BACKEND", "local")
    monkeypatch.setenv("ARAG_QDRANT_PATH", str(tmp_path / "local"))
    code, out, _ = run("search", "emperor penguins breed", "-k", "1")
    assert code == 0
    assert "Penguins" in out
    monkeypatch.setenv("ARAG_QDRANT_PATH", str(tmp_path / "imported"))
    assert run("store", "import", tmp_path / "kb.jsonl", "-q")[1].strip() == "imported 8 chunks into kb"
    assert "kb: 8 chunks" in run("store", "info")[1]

    assert run("store", "migrate", "--to", tmp_path / "x")[0] == 2
    assert run("store", "migrate", "--to", "http://127.0.0.1:9", "--backend", "local")[0] == 2


def test_migrate_to_a_qdrant_server(
    edge_store: EdgeStore, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`arag store migrate --to URL` into a real Qdrant server (``ARAG_TEST_QDRANT_URL``), then
    the server answers searches as the embedded store did."""
    server_store().close()  # skips without a server; empties it otherwise
    assert QDRANT_TEST_URL is not None
    edge_store.close()  # the command opens the configured (embedded) store itself
    monkeypatch.setenv("ARAG_EDGE_PATH", str(tmp_path / "edge"))
    assert main(["store", "migrate", "--to", QDRANT_TEST_URL, "-q"]) == 0
    assert "copied 150 chunks of alpha, beta" in capsys.readouterr().out
    with EdgeStore(tmp_path / "edge") as origin, QdrantStore(QDRANT_TEST_URL) as target:
        assert [s.name for s in target.list_sources()] == ["alpha", "beta"]
        assert target.count("alpha") == 120
        assert target.get_source("beta").description == "the second one"
        same_search(origin, target, "alpha")
        same_search(origin, target, "beta")
