"""A folder as people (and attackers) have them: every good file ingested, every other entry
reported with its reason, exact counts, and nothing hangs.

The tree holds hidden folders, a ``.gitignore``, tool folders and a virtualenv, symlinks inside and
outside and a loop, a FIFO, a broken link, bad JSONL rows, lone surrogates, terminal escape
sequences, an oversized file, a corrupt archive, and one file of every supported format written
by the libraries that write them (python-docx, python-pptx, openpyxl, ebooklib, nbformat).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agents.testing import FakeEmbeddings
from tests.formats import BINARY_MAKERS, FACTS, jsonl_rows, make_text_formats
from tools.ingest import SUPPORTED_SUFFIXES, Ingestor, IngestReport, WalkOptions
from tools.store import QdrantStore

_LIMIT = 512 * 1024  # the 100,000-deep JSONL row is 200 KB


def build_tree(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    make_text_formats(root)
    for name, make in BINARY_MAKERS.items():
        make(root / name)
    (root / "rows.jsonl").write_text(jsonl_rows(), encoding="utf-8")
    (root / "ansi.txt").write_text("\x1b[2J\x1b]0;pwned\x07Basalt forms from lava.\x1b[31m red\x1b[0m\r\n", "utf-8")
    (root / "big.txt").write_text("word " * (_LIMIT // 4), encoding="utf-8")  # over the cap
    (root / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")  # fails to load
    (root / "photo.png").write_bytes(b"\x89PNG\r\n")  # unsupported
    (root / "Makefile").write_text("all:\n")  # unsupported
    # hidden: a folder with the largest document, and a file
    (root / ".github").mkdir()
    (root / ".github" / "THREAT_MODEL.md").write_text("# Threat model\n\nThe attacker owns the network.\n")
    (root / ".env.md").write_text("# Secrets\n\nkey\n")
    # .gitignore: a folder and a pattern, and a nested .gitignore re-including one file
    (root / ".gitignore").write_text("drafts/\n*.tmp.md\n")
    (root / "drafts").mkdir()
    (root / "drafts" / "wip.md").write_text("# WIP\n\nNot ready.\n")
    (root / "scratch.tmp.md").write_text("# Scratch\n\nThrow away.\n")
    (root / "sub").mkdir()
    (root / "sub" / ".gitignore").write_text("*.txt\n!keep.txt\n")
    (root / "sub" / "keep.txt").write_text("Keep this note about granite.\n")
    (root / "sub" / "drop.txt").write_text("Dropped.\n")
    # tool folders: never walked
    for tool in (".git", "node_modules", "__pycache__"):
        (root / tool).mkdir()
        (root / tool / "x.md").write_text("# tool\n\nstate\n")
    (root / "env").mkdir()
    (root / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "env" / "README.md").write_text("# venv\n")
    # symlinks: inside (a file and a folder), outside, a loop of two, a loop to an ancestor, broken
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("The launch code is 0000.\n")
    (root / "alias.md").symlink_to(root / "guide.md")
    (root / "sub-link").symlink_to(root / "sub")
    (root / "secret.txt").symlink_to(outside / "secret.txt")
    (root / "loop-a.md").symlink_to(root / "loop-b.md")
    (root / "loop-b.md").symlink_to(root / "loop-a.md")
    (root / "sub" / "up").symlink_to(root)
    (root / "dead.md").symlink_to(root / "nowhere.md")
    # not a regular file: a FIFO named like a text file would block a reader forever
    os.mkfifo(root / "x.txt")
    return root


def _ingest(store: QdrantStore, root: Path, **options: Any) -> IngestReport:
    walk = WalkOptions(frozenset(SUPPORTED_SUFFIXES), max_file_bytes=_LIMIT, **options)
    ingestor = Ingestor(store, FakeEmbeddings(), walk_options=walk)
    done: list[IngestReport] = []
    worker = threading.Thread(target=lambda: done.append(ingestor.ingest_paths([root], "docs")), daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the ingest hung (a FIFO read? a symlink loop?)"
    assert done, "the ingest raised instead of reporting"
    return done[0]


def _stored_text(store: QdrantStore) -> dict[str, str]:
    texts: dict[str, str] = {}
    for hit in store.scroll("docs"):
        name = Path(hit.payload["path"]).name
        texts[name] = texts.get(name, "") + "\n" + hit.payload["text"]
    return texts


def test_every_good_file_is_ingested_and_everything_else_reported(memory_store: QdrantStore, tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    report = _ingest(memory_store, root)

    good = set(FACTS) | {"ansi.txt", "keep.txt"}
    texts = _stored_text(memory_store)
    assert set(texts) == good
    for name, phrase in FACTS.items():
        assert phrase.lower() in texts[name].lower(), name

    kinds = {Path(s.path).relative_to(root).as_posix(): s.kind for s in report.skipped}
    assert kinds == {
        ".github": "hidden",
        ".env.md": "hidden",
        "drafts": "ignored",
        "scratch.tmp.md": "ignored",
        "sub/drop.txt": "ignored",
        ".git": "tool",
        "node_modules": "tool",
        "__pycache__": "tool",
        "env": "tool",
        "alias.md": "duplicate",
        "sub-link": "duplicate",
        "secret.txt": "outside",
        "loop-a.md": "loop",
        "loop-b.md": "loop",
        "sub/up": "loop",
        "dead.md": "broken",
        "x.txt": "special",
        "big.txt": "too-large",
        "photo.png": "unsupported",
        "Makefile": "unsupported",
    }
    counts = Counter(kinds.values())
    assert counts == {
        "hidden": 2, "ignored": 3, "tool": 4, "duplicate": 2, "outside": 1, "loop": 3,
        "broken": 1, "special": 1, "too-large": 1, "unsupported": 2,
    }  # fmt: skip
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert "--hidden" in reasons[".github"]
    assert "--follow-symlinks" in reasons["secret.txt"]
    assert "ARAG_INGEST_MAX_FILE_MB=1" in reasons["big.txt"]

    # Found: the good files plus the one that fails to load; nothing else was opened.
    assert (report.files, report.files_loaded) == (len(good) + 1, len(good))
    assert {Path(p.path).name: p.reason for p in report.problems} == {
        "broken.docx": "corrupt .docx (File is not a zip file)"
    }
    rows = sorted(w for w in report.warnings if "rows.jsonl" in w)
    assert len(rows) == 3
    assert any("line 2" in w and "nested too deeply" in w for w in rows)
    assert any("line 3" in w and "digit" in w for w in rows)
    assert any("line 4" in w and "NaN" in w for w in rows)

    # Cleaned before ids were computed: no escape sequence, no lone surrogate is stored.
    assert "\x1b" not in texts["ansi.txt"]
    assert "pwned" not in texts["ansi.txt"]
    assert "Basalt forms from lava. red" in texts["ansi.txt"]
    assert "Lone \ufffd surrogate row." in texts["rows.jsonl"]
    assert "0000" not in " ".join(texts.values())  # the outside file stayed outside


def test_the_summary_counts_each_kind_with_how_to_include_it(memory_store: QdrantStore, tmp_path: Path) -> None:
    report = _ingest(memory_store, build_tree(tmp_path))
    assert report.skip_summary() == (
        "skipped: 2 hidden (use --hidden), 3 ignored by .gitignore (use --no-gitignore), "
        "4 version-control or tool folders, 2 unsupported, "
        "1 symlinks to outside the given paths (use --follow-symlinks), 3 symlink loops, 1 broken symlinks, "
        "1 not regular files, 1 too large (raise ARAG_INGEST_MAX_FILE_MB), "
        "2 reached twice (symlinks to inside, paths named twice)"
    )


def test_hidden_no_gitignore_and_follow_symlinks_take_what_they_name(memory_store: QdrantStore, tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    report = _ingest(memory_store, root, hidden=True, gitignore=False, follow_symlinks=True)

    texts = _stored_text(memory_store)
    assert {"THREAT_MODEL.md", ".env.md", "wip.md", "scratch.tmp.md", "drop.txt", "secret.txt"} <= set(texts)
    assert "attacker owns the network" in texts["THREAT_MODEL.md"]
    kinds = Counter(s.kind for s in report.skipped)
    assert "hidden" not in kinds
    assert "ignored" not in kinds
    assert "outside" not in kinds
    assert kinds["tool"] == 4  # tool folders stay out even with --hidden
    # .gitignore files themselves are documents' rules, but with --no-gitignore --hidden they are
    # hidden entries of an unsupported type
    assert kinds["unsupported"] == 2 + 2


@pytest.mark.parametrize("name", ["x.txt", "data.jsonl"])
def test_a_fifo_named_explicitly_is_refused_not_read(memory_store: QdrantStore, tmp_path: Path, name: str) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    good = tmp_path / "good.md"
    good.write_text("# Good\n\nA good file.\n")
    ingestor = Ingestor(memory_store, FakeEmbeddings())
    done: list[IngestReport] = []
    worker = threading.Thread(target=lambda: done.append(ingestor.ingest_paths([fifo, good], "docs")), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive()
    [report] = done
    assert [(Path(s.path).name, s.kind) for s in report.skipped] == [(name, "special")]
    assert report.files_loaded == 1
