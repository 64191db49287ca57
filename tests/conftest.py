"""Shared fixtures: a network guard, a deterministic fake embedder, stores, the real model."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.testing import FakeEmbeddings
from tools.embeddings import LocalEmbeddings
from tools.store import EdgeStore, QdrantStore, VectorStore

# The `browser` fixture (headless Chromium) for the tests that look at pages.
pytest_plugins = ["tests.browser"]

# -- no network but loopback -----------------------------------------------------------------

_real_connect = socket.socket.connect


def _is_loopback(address: Any) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _is_loopback(address):
        msg = f"test tried to reach {address!r}: tests are offline (loopback only)"
        raise RuntimeError(msg)
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's ARAG_* variables or .env, or writes outside tmp_path."""
    import os

    for key in list(os.environ):
        if key.startswith("ARAG_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARAG_DATA_DIR", str(tmp_path / "arag-data"))


# -- embeddings ------------------------------------------------------------------------------


@pytest.fixture
def fake_embeddings() -> FakeEmbeddings:
    """A fresh :class:`agents.testing.FakeEmbeddings` (its ``calls`` start empty)."""
    return FakeEmbeddings()


@pytest.fixture(scope="session")
def real_embeddings() -> LocalEmbeddings:
    """The bundled all-MiniLM-L6-v2 (loaded once per test session)."""
    embeddings = LocalEmbeddings()
    embeddings.embed_query("warm up")
    return embeddings


# -- stores ----------------------------------------------------------------------------------


@pytest.fixture
def memory_store() -> Iterator[QdrantStore]:
    with QdrantStore(":memory:") as store:
        yield store


@pytest.fixture
def disk_store(tmp_path: Path) -> Iterator[QdrantStore]:
    with QdrantStore(tmp_path / "qdrant") as store:
        yield store


def open_store(kind: str, tmp_path: Path) -> VectorStore:
    """A store of one of the backends: qdrant-client in memory or on disk, or Qdrant Edge."""
    if kind == "memory":
        return QdrantStore(":memory:")
    if kind == "disk":
        return QdrantStore(tmp_path / "qdrant")
    # A low threshold, so tests exercise the HNSW index build.
    return EdgeStore(tmp_path / "edge", index_threshold=100)


@pytest.fixture(params=["memory", "disk"])
def qdrant_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QdrantStore]:
    """Tests of qdrant-client specifics, on an in-memory and an on-disk store."""
    location = ":memory:" if request.param == "memory" else tmp_path / "qdrant"
    with QdrantStore(location) as opened:
        yield opened


@pytest.fixture(params=["memory", "disk", "edge"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The same tests on every backend."""
    opened = open_store(request.param, tmp_path)
    yield opened
    opened.close()


# -- files -----------------------------------------------------------------------------------


def make_pdf(path: Path, pages: list[str]) -> Path:
    """Write a minimal valid PDF with one line of Helvetica text per page."""
    objects: list[bytes] = []
    page_ids = [3 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font_id = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {page_ids[i] + 1} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return write_pdf(path, objects)


def write_pdf(path: Path, objects: list[bytes]) -> Path:
    """Write PDF objects (numbered from 1, the first the catalog) with their cross-reference table."""
    body = b"%PDF-1.4\n"
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(body))
        body += f"{number} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(body)
    body += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    body += b"".join(f"{off:010d} 00000 n \n".encode() for off in offsets)
    body += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(body)
    return path


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A folder with one good file of every supported type, and nothing broken."""
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "guide.md").write_text(
        "# Rotating keys\n\nTo rotate the API keys, open the admin console and press Rotate.\n\n"
        "Old keys stop working after one hour.\n"
    )
    (root / "notes.txt").write_text("The Eiffel Tower is 330 metres tall and was completed in 1889.\n")
    (root / "sub" / "page.html").write_text(
        "<html><head><title>Penguins</title><style>p{color:red}</style></head>"
        "<body><h1>Emperor penguins</h1><p>Emperor penguins breed in the Antarctic winter.</p>"
        "<script>var x = 1;</script></body></html>"
    )
    (root / "table.csv").write_text("id,title,text\nr1,Volcanoes,Mount Etna is an active volcano in Sicily.\n")
    (root / "rows.jsonl").write_text(
        '{"_id": "d1", "title": "Photosynthesis", "text": "Plants turn light into chemical energy."}\n'
        '{"_id": "d2", "title": "Tides", "text": "Tides are caused by the gravity of the Moon."}\n'
    )
    make_pdf(root / "paper.pdf", ["Quantum computers use qubits.", "Qubits can be entangled."])
    (root / ".hidden.txt").write_text("never ingested")
    return root
