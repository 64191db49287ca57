"""Hostile files against the ingest: each one costs only itself, is reported with its reason, and
nothing hangs or leaks a file from outside the given paths. From a red-team pass over the walk,
the loaders and the pipeline."""

from __future__ import annotations

import os
import struct
import threading
import time
import zipfile
from pathlib import Path

import pytest

from agents._console import shown
from agents.testing import FakeEmbeddings
from tools.ingest import SUPPORTED_SUFFIXES, Chunker, Ingestor, IngestReport, WalkOptions, walk
from tools.ingest.loaders import Document, LoadError, load_file
from tools.store import QdrantStore


def _ingest(store: QdrantStore, paths: list[Path], timeout: float = 120, **options: object) -> IngestReport:
    ingestor = Ingestor(store, FakeEmbeddings(), **options)  # type: ignore[arg-type]
    done: list[IngestReport] = []
    worker = threading.Thread(target=lambda: done.append(ingestor.ingest_paths(paths, "docs")), daemon=True)
    worker.start()
    worker.join(timeout=timeout)
    ingestor.close()
    assert not worker.is_alive(), "the ingest hung"
    assert done, "the ingest raised instead of reporting"
    return done[0]


def _names(store: QdrantStore) -> set[str]:
    return {Path(h.payload["path"]).name for h in store.scroll("docs")}


def _good(folder: Path) -> Path:
    good = folder / "good.md"
    good.write_text("# Good\n\nGranite is an igneous rock.\n")
    return good


# -- parsers that would hang or exhaust memory: the loader process --------------------------------


def test_a_file_that_parses_for_minutes_is_stopped_and_the_rest_ingested(
    memory_store: QdrantStore, tmp_path: Path
) -> None:
    (tmp_path / "slow.html").write_text("<a " * 40_000)  # quadratic in Python 3.11's html.parser
    _good(tmp_path)
    started = time.monotonic()
    report = _ingest(memory_store, [tmp_path], file_timeout_s=2)
    assert time.monotonic() - started < 30
    [problem] = report.problems
    assert Path(problem.path).name == "slow.html"
    assert "took longer than 2 s" in problem.reason
    assert "ARAG_INGEST_FILE_TIMEOUT" in problem.reason
    assert _names(memory_store) == {"good.md"}


def test_a_file_that_exhausts_its_parser_memory_costs_only_itself(memory_store: QdrantStore, tmp_path: Path) -> None:
    rows = "".join(f"{i},value number {i} of a long table\n" for i in range(400_000))
    (tmp_path / "rows.csv").write_text("n,v\n" + rows)  # 15 MB: a million small objects to parse
    _good(tmp_path)
    report = _ingest(memory_store, [tmp_path], file_memory_mb=300)
    [problem] = report.problems
    assert Path(problem.path).name == "rows.csv"
    assert "memory" in problem.reason
    assert "ARAG_INGEST_FILE_MEMORY_MB" in problem.reason
    assert _names(memory_store) == {"good.md"}
    # the same file with the default limit loads: the limit, not the file, refused it
    assert load_file(tmp_path / "rows.csv").documents[-1].metadata == {"row": 400_001}


def test_a_zip_bomb_that_lies_about_its_sizes_is_refused_without_expanding(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"a" * (300 * 2**20))
    data = bytearray(bomb.read_bytes())
    # Both headers say 1,000 bytes: a check that trusts them sees nothing to fear.
    struct.pack_into("<I", data, 22, 1000)  # local file header: uncompressed size
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 1000)  # central directory: uncompressed size
    bomb.write_bytes(bytes(data))
    with pytest.raises(LoadError) as caught:
        load_file(bomb)
    assert "corrupt .docx" in caught.value.reason


def test_an_honest_zip_bomb_is_refused_by_what_comes_out(tmp_path: Path) -> None:
    bomb = tmp_path / "sheet.xlsx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (100 * 2**20))
    with pytest.raises(LoadError) as caught:
        load_file(bomb)
    assert "likely zip bomb" in caught.value.reason


# -- .gitignore files are hostile too --------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "device", "bad-pattern"])
def test_a_hostile_gitignore_never_stops_the_walk(memory_store: QdrantStore, tmp_path: Path, kind: str) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    _good(sub)
    gitignore = sub / ".gitignore"
    if kind == "fifo":
        os.mkfifo(gitignore)
    elif kind == "device":
        gitignore.symlink_to("/dev/zero")
    else:
        gitignore.write_text("!\n*.tmp.md\n")
    (sub / "x.tmp.md").write_text("# tmp\n\ntemporary\n")
    report = _ingest(memory_store, [tmp_path], timeout=30)
    assert "good.md" in _names(memory_store)
    assert any(".gitignore" in w for w in report.warnings), report.warnings
    if kind == "bad-pattern":  # the bad line is dropped, the good one still applies
        assert any("line 1 not used" in w for w in report.warnings)
        assert [(Path(s.path).name, s.kind) for s in report.skipped] == [("x.tmp.md", "ignored")]


# -- files swapped after the walk -----------------------------------------------------------


def test_a_file_swapped_for_a_symlink_after_the_walk_is_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("The launch code is 0000.")
    note = root / "note.txt"
    note.write_text("An ordinary note.")
    [found] = walk([root], WalkOptions(frozenset(SUPPORTED_SUFFIXES))).files
    identity = (found.device, found.inode)

    note.unlink()
    note.symlink_to(outside)
    with pytest.raises(LoadError) as caught:
        load_file(found.path, identity=identity)
    assert "became a symlink" in caught.value.reason
    assert "secret" not in str(caught.value)  # not even the outside name is read

    # a hard link to an outside file (the same inode) is the one swap identity cannot tell;
    # another inode under the walked name is refused
    (tmp_path / "other.txt").write_text("Another file.")  # made while note.txt exists: another inode
    note.unlink()
    os.link(tmp_path / "other.txt", note)
    with pytest.raises(LoadError) as caught:
        load_file(found.path, identity=identity)
    assert "replaced since the walk" in caught.value.reason


def test_a_folder_swapped_for_a_symlink_during_the_walk_is_not_walked(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.md").write_text("# A\n\ninside\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\noutside\n")
    options = WalkOptions(frozenset(SUPPORTED_SUFFIXES))

    import tools.ingest._walk as walk_module

    real_entries = walk_module._entries

    def swap_then_list(folder: Path, *args: object) -> object:
        result = real_entries(folder, *args)  # type: ignore[arg-type]
        if folder == root.resolve():  # after the root is listed, before sub/ is opened
            (root / "sub").rename(tmp_path / "moved")
            (root / "sub").symlink_to(outside)
        return result

    walk_module._entries = swap_then_list  # type: ignore[assignment]
    try:
        found = walk([root], options)
    finally:
        walk_module._entries = real_entries
    assert [f.path.name for f in found.files] == []
    [skip] = found.skipped
    assert (Path(skip.path).name, skip.kind) == ("sub", "unreadable")
    assert "replaced while the walk ran" in skip.reason or "cannot open" in skip.reason


# -- names, rows and runs that once broke a batch ---------------------------------------------


def test_a_file_name_that_is_not_utf8_is_ingested_and_synced_stably(memory_store: QdrantStore, tmp_path: Path) -> None:
    bad = tmp_path / os.fsdecode(b"caf\xe9.txt")  # Latin-1 name: not valid UTF-8
    bad.write_text("Coffee grows on shrubs.")
    _good(tmp_path)
    ingestor = Ingestor(memory_store, FakeEmbeddings(), isolate=False)
    first = ingestor.ingest_paths([tmp_path], "docs", sync=True)
    assert first.problems == []
    assert "caf\\xe9.txt" in {Path(h.payload["path"]).name for h in memory_store.scroll("docs")}
    again = ingestor.ingest_paths([tmp_path], "docs", sync=True)
    assert (again.added, again.removed, again.removed_files) == (0, 0, {})  # the same file, the same key


def test_csv_with_a_huge_cell_and_a_malformed_line_keeps_its_good_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tmp_path / "t.csv"
    rows = ["id,text", "1,first row", f'2,"{"x" * 200_000}"', "3,third row", f'4,"{"y" * 5000}"', "5,fifth"]
    table.write_text("\n".join(rows) + "\n")
    assert [d.doc_id for d in load_file(table).documents] == ["1", "2", "3", "4", "5"]  # Python's 128 KB cap is lifted

    import tools.ingest.loaders as loaders

    monkeypatch.setattr(loaders, "_CSV_FIELD_LIMIT", 300_000)
    rows[4] = f'4,"{"y" * 400_000}"'  # over the cap: a malformed line
    table.write_text("\n".join(rows) + "\n")
    loaded = load_file(table)
    assert [d.doc_id for d in loaded.documents] == ["1", "2", "3"]
    [warning] = loaded.warnings
    assert "after line 4" in warning
    assert "field larger than field limit" in warning
    assert "the rest of the file is not read" in warning


def test_blank_rows_and_pages_are_said_not_dropped_silently(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"_id": "a", "text": "First."}\n{"_id": "b", "text": "   "}\n{"_id": "c", "text": "Third."}\n')
    loaded = load_file(rows)
    assert [d.doc_id for d in loaded.documents] == ["a", "c"]
    [warning] = loaded.warnings
    assert "1 empty parts skipped" in warning
    assert warning.endswith(": b")


def test_a_run_without_spaces_is_cut_into_chunks_not_into_characters() -> None:
    run = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(200_000))  # CJK text has no spaces
    text = run + " tail words here"
    started = time.perf_counter()
    chunks = Chunker(1000, 200).split(Document("d", text, "t", "/d"), "s")
    assert time.perf_counter() - started < 5
    assert max(len(c.text) for c in chunks) <= 1000
    assert len(chunks) == 251  # 200,000 characters in steps of 800, then the words after the run
    assert chunks[-2].text == run[199_200:]  # the last slice: from 199,200 to the end of the run
    assert chunks[-1].text == "tail words here"
    assert [c.payload["start"] for c in chunks[:3]] == [0, 800, 1600]  # every piece placed in the document
    assert chunks[-1].payload["start"] == 200_001


# -- sync and printing ----------------------------------------------------------------------


def test_sync_with_a_missing_root_removes_nothing(memory_store: QdrantStore, tmp_path: Path) -> None:
    folder = tmp_path / "mount"
    folder.mkdir()
    _good(folder)
    ingestor = Ingestor(memory_store, FakeEmbeddings(), isolate=False)
    ingestor.ingest_paths([folder], "docs")
    folder.rename(tmp_path / "unmounted")
    report = ingestor.ingest_paths([folder], "docs", sync=True)
    assert report.removed == 0
    assert any("not synced" in w and "nothing was removed" in w for w in report.warnings)
    assert memory_store.count("docs") == 1


def test_printed_fields_cannot_forge_lines_or_escape() -> None:
    name = "a\nfailed secrets.txt: forged line\x1b]0;title\x07\tb.txt"
    assert shown(name) == "a failed secrets.txt: forged line b.txt"
    assert shown("one\ntwo", lines=True) == "one\ntwo"
    assert shown("[red]x[/]") == "\\[red]x\\[/]"
