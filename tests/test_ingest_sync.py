"""``sync``: a source made equal to its folders, and ``Watcher`` keeping it so as files change."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.testing import FakeEmbeddings
from tools.embeddings import CachedEmbeddings
from tools.ingest import Ingestor, IngestReport, Watcher
from tools.store import QdrantStore

_TOPICS = ["granite", "basalt", "marble", "slate", "quartz", "obsidian", "pumice", "chalk"]


def _write_folder(root: Path) -> None:
    root.mkdir()
    for i, topic in enumerate(_TOPICS):
        # Markdown titles come from the heading, text titles from the file name: a renamed .txt
        # file's chunks are embedded with a new title, a renamed .md file's are the same texts.
        suffix = ".md" if i % 2 == 0 else ".txt"
        heading = f"# {topic.title()}\n\n" if suffix == ".md" else ""
        body = " ".join(f"{topic.title()} fact {n} is about {topic} rock number {n}." for n in range(60))
        (root / f"{topic}{suffix}").write_text(heading + body)


def _paths(store: QdrantStore, source: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for hit in store.scroll(source):
        name = Path(hit.payload["path"]).name
        counts[name] = counts.get(name, 0) + 1
    return counts


def _ingested(store: QdrantStore, tmp_path: Path, embeddings: FakeEmbeddings) -> tuple[Path, Ingestor]:
    """The eight-file folder, ingested once into "rocks"."""
    root = tmp_path / "rocks"
    _write_folder(root)
    ingestor = Ingestor(store, embeddings)
    ingestor.ingest_paths([root], "rocks")
    return root, ingestor


@pytest.fixture
def counting(tmp_path: Path) -> Iterator[tuple[CachedEmbeddings, FakeEmbeddings]]:
    inner = FakeEmbeddings()
    with CachedEmbeddings(inner, tmp_path / "cache.sqlite") as cached:
        yield cached, inner


def test_sync_after_deleting_three_and_renaming_two_files(
    memory_store: QdrantStore, tmp_path: Path, counting: tuple[CachedEmbeddings, FakeEmbeddings]
) -> None:
    cached, inner = counting
    root = tmp_path / "rocks"
    _write_folder(root)
    ingestor = Ingestor(memory_store, cached)
    first = ingestor.ingest_paths([root], "rocks")
    before = _paths(memory_store, "rocks")
    assert first.files_loaded == 8
    assert all(count > 1 for count in before.values())  # several chunks per file

    for gone in ("granite.md", "basalt.txt", "marble.md"):
        (root / gone).unlink()
    (root / "slate.txt").rename(root / "roofing-slate.txt")  # title changes with the name
    (root / "quartz.md").rename(root / "crystal.md")  # title is the heading: unchanged
    embedded_before = sum(inner.calls)

    report = ingestor.ingest_paths([root], "rocks", sync=True)

    after = _paths(memory_store, "rocks")
    removed = {"granite.md", "basalt.txt", "marble.md", "slate.txt", "quartz.md"}
    assert not removed & set(after)  # 0 chunks of removed or renamed-away paths
    assert {Path(p).name: n for p, n in report.removed_files.items()} == {name: before[name] for name in removed}
    assert report.removed == sum(before[name] for name in removed)
    assert set(after) == {"roofing-slate.txt", "crystal.md", "obsidian.txt", "pumice.md", "chalk.txt"}
    # Stored again: exactly the renamed files' chunks; embedded by the model: only the chunks whose
    # text changed (the renamed .txt file's, whose title is its name); the rest came from the cache.
    assert report.added == before["slate.txt"] + before["quartz.md"]
    assert sum(inner.calls) - embedded_before == before["slate.txt"]
    assert report.unchanged == sum(before[n] for n in ("obsidian.txt", "pumice.md", "chalk.txt"))


def test_without_sync_gone_files_keep_their_chunks_and_are_reported(
    memory_store: QdrantStore, tmp_path: Path, fake_embeddings: FakeEmbeddings
) -> None:
    root = tmp_path / "rocks"
    _write_folder(root)
    ingestor = Ingestor(memory_store, fake_embeddings)
    before = _paths(memory_store, "rocks") if ingestor.ingest_paths([root], "rocks").ok else {}
    (root / "granite.md").unlink()
    (root / "slate.txt").rename(root / "roofing-slate.txt")
    report = ingestor.ingest_paths([root], "rocks")
    assert {Path(p).name: n for p, n in report.gone_files.items()} == {
        "granite.md": before["granite.md"], "slate.txt": before["slate.txt"]
    }  # fmt: skip
    assert report.removed_files == {}
    assert {"granite.md", "slate.txt"} <= set(_paths(memory_store, "rocks"))  # kept until --sync


def test_sync_of_an_emptied_folder_empties_the_source_and_is_ok(
    memory_store: QdrantStore, tmp_path: Path, fake_embeddings: FakeEmbeddings
) -> None:
    root, ingestor = _ingested(memory_store, tmp_path, fake_embeddings)
    for path in root.iterdir():
        path.unlink()
    report = ingestor.ingest_paths([root], "rocks", sync=True)
    assert report.ok
    assert len(report.removed_files) == 8
    assert memory_store.count("rocks") == 0


def test_sync_removes_files_that_now_fail_or_are_left_out(
    memory_store: QdrantStore, tmp_path: Path, fake_embeddings: FakeEmbeddings
) -> None:
    root, ingestor = _ingested(memory_store, tmp_path, fake_embeddings)
    (root / "granite.md").write_bytes(b"\x00binary now")
    (root / ".gitignore").write_text("chalk.txt\n")
    report = ingestor.ingest_paths([root], "rocks", sync=True)
    assert {Path(p).name for p in report.removed_files} == {"granite.md", "chalk.txt"}
    assert [Path(p.path).name for p in report.problems] == ["granite.md"]
    assert [(Path(s.path).name, s.kind) for s in report.skipped] == [("chalk.txt", "ignored")]


def test_unchanged_fingerprints_are_not_read_again(
    memory_store: QdrantStore, tmp_path: Path, fake_embeddings: FakeEmbeddings
) -> None:
    root = tmp_path / "rocks"
    _write_folder(root)
    ingestor = Ingestor(memory_store, fake_embeddings)
    first = ingestor.ingest_paths([root], "rocks", sync=True)
    (root / "chalk.txt").write_text("Chalk is a soft white limestone.")
    second = ingestor.ingest_paths([root], "rocks", sync=True, unchanged=first.fingerprints)
    assert (second.files_loaded, second.files_unchanged) == (1, 7)
    assert second.removed_files == {}  # unchanged files are kept, not mistaken for gone ones
    assert _paths(memory_store, "rocks")["chalk.txt"] == 1


def _wait_for(condition: object, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if callable(condition) and condition():
            return time.monotonic() - started
        time.sleep(0.02)
    return float("inf")


def test_watch_picks_up_a_new_file_within_two_seconds_and_a_deletion(
    memory_store: QdrantStore, tmp_path: Path, fake_embeddings: FakeEmbeddings
) -> None:
    root = tmp_path / "rocks"
    _write_folder(root)
    watcher = Watcher(Ingestor(memory_store, fake_embeddings), [root], "rocks", debounce_ms=500, step_ms=50)
    stop = threading.Event()
    reports: list[IngestReport] = []

    def run() -> None:
        reports.extend(watcher.run(stop=stop))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        assert _wait_for(lambda: len(reports) >= 1, 60) < 60  # the first sync
        time.sleep(0.3)  # the watcher is listening
        (root / "flint.md").write_text("# Flint\n\nFlint makes sparks when struck with steel.")
        took = _wait_for(lambda: "flint.md" in _paths(memory_store, "rocks"), 10)
        assert took < 2.0, f"the new file took {took:.2f} s to be searchable"
        assert _wait_for(lambda: len(reports) >= 2, 5) < 5
        assert (reports[1].files_loaded, reports[1].files_unchanged) == (1, 8)  # only the new file was read
        (root / "chalk.txt").unlink()
        assert _wait_for(lambda: "chalk.txt" not in _paths(memory_store, "rocks"), 10) < 2.0
        assert any(Path(p).name == "chalk.txt" for r in reports for p in r.removed_files)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()
