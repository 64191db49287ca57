"""Shared fixtures: a network guard, a deterministic fake embedder, stores, the real model."""

from __future__ import annotations

import ipaddress
import os
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

# -- a real Qdrant server, when one is given --------------------------------------------------

QDRANT_TEST_URL = os.environ.get("ARAG_TEST_QDRANT_URL", "").strip() or None
"""A real Qdrant server for the ``server`` variants of the store tests (read at import: the
``_isolated_settings`` fixture clears every ``ARAG_*`` variable). It must be a throwaway server:
each test that uses it starts by deleting every collection on it."""

NO_QDRANT_SERVER = (
    "no Qdrant server: set ARAG_TEST_QDRANT_URL=http://host:6333 (a throwaway one; the tests delete its "
    "collections) to run the store tests against it"
)


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


def _test_server_hosts() -> frozenset[str]:
    """The addresses of :data:`QDRANT_TEST_URL`'s host: the one place off loopback tests may reach."""
    if QDRANT_TEST_URL is None:
        return frozenset()
    from urllib.parse import urlsplit

    host = urlsplit(QDRANT_TEST_URL).hostname or ""
    try:
        return frozenset({host} | {info[4][0] for info in socket.getaddrinfo(host, None)})
    except OSError:
        return frozenset({host})


_TEST_SERVER_HOSTS = _test_server_hosts()


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _is_loopback(address) and not (isinstance(address, tuple) and address[0] in _TEST_SERVER_HOSTS):
        msg = f"test tried to reach {address!r}: tests are offline (loopback only)"
        raise RuntimeError(msg)
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's ARAG_* variables or .env, or writes outside tmp_path."""
    for key in list(os.environ):
        if key.startswith("ARAG_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARAG_DATA_DIR", str(tmp_path / "arag-data"))


# -- Postgres --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server for the session (:class:`agents.testing.PostgresServer`). Where
    none can start the tests skip, saying why; under CI (``CI=true``) they fail instead."""
    import os

    from agents.testing import PostgresServer, missing_postgres

    if (reason := missing_postgres()) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the Postgres tests: {reason}")
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def threads_url(postgres: Any) -> str:
    """A fresh database on the session's Postgres."""
    return str(postgres.create_database())


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


def server_store() -> QdrantStore:
    """A store on the test Qdrant server, emptied; skips (saying how to run it) without one."""
    if QDRANT_TEST_URL is None:
        pytest.skip(NO_QDRANT_SERVER)
    opened = QdrantStore(QDRANT_TEST_URL, timeout=30)
    client = opened._engine.client  # type: ignore[attr-defined]
    for collection in client.get_collections().collections:
        client.delete_collection(collection.name)
    return opened


def open_store(kind: str, tmp_path: Path) -> VectorStore:
    """A store of one of the backends: qdrant-client in memory or on disk, Qdrant Edge, or a
    real Qdrant server (``server``: :data:`QDRANT_TEST_URL`)."""
    if kind == "memory":
        return QdrantStore(":memory:")
    if kind == "disk":
        return QdrantStore(tmp_path / "qdrant")
    if kind == "server":
        return server_store()
    # A low threshold, so tests exercise the HNSW index build.
    return EdgeStore(tmp_path / "edge", index_threshold=100)


@pytest.fixture(params=["memory", "disk", "server"])
def qdrant_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QdrantStore]:
    """Tests of qdrant-client specifics, on an in-memory, an on-disk store and a Qdrant server."""
    opened = open_store(request.param, tmp_path)
    assert isinstance(opened, QdrantStore)
    with opened:
        yield opened


@pytest.fixture(params=["memory", "disk", "edge", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The same tests on every backend (``server`` only with ``ARAG_TEST_QDRANT_URL``)."""
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
