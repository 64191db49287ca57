"""File loaders: .txt .md .html .pdf .csv .jsonl into :class:`Document` objects.

A file that cannot be read raises :class:`LoadError` with a reason a user can act on; ingestion
reports it and goes on with the other files. Problems inside a file that do not spoil the rest
(one bad JSONL line, one unreadable PDF page) come back as warnings beside the documents.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

__all__ = ["SUPPORTED_SUFFIXES", "Document", "LoadError", "Loaded", "find_files", "load_file"]

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".csv", ".jsonl")

_SNIFF_BYTES = 8192
_TEXT_FIELDS = ("text", "content", "body", "abstract", "page_content")
_ID_FIELDS = ("_id", "id", "doc_id")


@dataclass(frozen=True, slots=True)
class Document:
    """A unit of text to split and index."""

    doc_id: str
    """Stable id: the absolute file path, or the row id of a BEIR/JSONL/CSV row."""
    text: str
    title: str
    path: str
    """The file it came from (absolute)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Anything else worth keeping (page number, CSV columns, JSONL fields, user metadata)."""


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a file yielded: its documents and the warnings about parts that were skipped."""

    documents: list[Document]
    warnings: list[str] = field(default_factory=list)


class LoadError(Exception):
    """A file could not be loaded. ``reason`` says why and what to do."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def find_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[LoadError]]:
    """Expand files and folders (recursively, hidden entries skipped) into files to load.

    Returns the files in a stable order, and a :class:`LoadError` for every path that does not
    exist or whose type is not supported.
    """
    files: list[Path] = []
    problems: list[LoadError] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            problems.append(LoadError(path, "no such file or folder"))
        elif path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if not name.startswith("."):
                        _add(Path(root) / name, files, problems)
        else:
            _add(path, files, problems)
    return list(dict.fromkeys(files)), problems


def _add(path: Path, files: list[Path], problems: list[LoadError]) -> None:
    if path.suffix.lower() in SUPPORTED_SUFFIXES:
        files.append(path.resolve())
    else:
        kinds = " ".join(SUPPORTED_SUFFIXES)
        problems.append(LoadError(path, f"unsupported file type {path.suffix or '(none)'!r}; supported: {kinds}"))


def load_file(path: str | Path) -> Loaded:
    """Load one file by its suffix; raises :class:`LoadError` when nothing usable is in it."""
    path = Path(path).resolve()
    suffix = path.suffix.lower()
    try:
        if suffix == ".pdf":
            loaded = _load_pdf(path)
        elif suffix == ".jsonl":
            loaded = _load_jsonl(path)
        elif suffix == ".csv":
            loaded = _load_csv(path)
        elif suffix in (".html", ".htm"):
            loaded = _load_html(path)
        elif suffix in (".md", ".markdown"):
            text = _read_text(path)
            loaded = Loaded([Document(str(path), text, _markdown_title(text) or path.stem, str(path))])
        elif suffix == ".txt":
            loaded = Loaded([Document(str(path), _read_text(path), path.stem, str(path))])
        else:
            raise LoadError(path, f"unsupported file type {suffix!r}")
    except OSError as exc:
        raise LoadError(path, f"cannot read: {exc.strerror or exc}") from None
    documents = [d for d in loaded.documents if d.text.strip()]
    if not documents:
        raise LoadError(path, "empty: no text to ingest")
    return Loaded(documents, loaded.warnings)


# -- text ------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise LoadError(path, "has a UTF-16 byte-order mark but is not valid UTF-16") from None
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise LoadError(path, "binary content (NUL bytes), not text; remove it or rename it to its real type")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = (
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it to UTF-8, e.g. iconv -f latin1 -t utf-8"
        )
        raise LoadError(path, msg) from None


def _markdown_title(text: str) -> str:
    for line in text.splitlines()[:50]:
        if line.startswith("# "):
            return line[2:].strip()
    return ""


# -- html ------------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    "p div br li ul ol h1 h2 h3 h4 h5 h6 tr table section article header footer pre blockquote dt dd".split()  # noqa: SIM905
)
_SKIP_TAGS = frozenset(("script", "style", "noscript", "template", "svg"))
# What may appear inside <head>; any other start tag opens the body, as browsers do, because the
# </head> and <body> tags are optional in HTML.
_HEAD_TAGS = frozenset(("head", "html", "title", "meta", "link", "base", "style", "script", "noscript", "template"))


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._skip = 0
        self._in_title = False
        self._in_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "head":
            self._in_head = True
        elif tag not in _HEAD_TAGS:
            self._in_head = False
        if tag == "title":
            self._in_title = True
        elif tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self._in_head = False
        if tag == "title":
            self._in_title = False
        elif tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif not self._skip and not self._in_head:
            self.parts.append(data)


def _load_html(path: Path) -> Loaded:
    parser = _TextExtractor()
    parser.feed(_read_text(path))
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    text = "\n\n".join(line for line in lines if line)  # each line is a block: a paragraph
    title = " ".join("".join(parser.title_parts).split()) or path.stem
    return Loaded([Document(str(path), text, title, str(path))])


# -- pdf -------------------------------------------------------------------------------------


def _load_pdf(path: Path) -> Loaded:
    # pypdf logs every repair it attempts; the outcome is reported here, once, with the file name.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    with path.open("rb") as handle:
        head = handle.read(1024)
    if b"%PDF-" not in head:
        raise LoadError(path, "not a PDF (no %PDF- header); the file is corrupt or misnamed")
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise LoadError(path, "encrypted PDF; decrypt it first (e.g. qpdf --decrypt)")
        pages = list(reader.pages)
        info_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoadError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LoadError(path, f"corrupt PDF: {exc}") from None
    title = str(info_title).strip() or path.stem
    documents: list[Document] = []
    warnings: list[str] = []
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
            warnings.append(f"{path}: page {number} skipped: {exc}")
            continue
        if text.strip():
            documents.append(Document(str(path), text, title, str(path), {"page": number}))
    if not documents:
        raise LoadError(path, "no extractable text (a scanned PDF? run OCR first, e.g. ocrmypdf)")
    return Loaded(documents, warnings)


# -- jsonl and csv ---------------------------------------------------------------------------


def _row_document(row: dict[str, Any], path: Path, fallback_id: str) -> Document | None:
    """A document from a BEIR-style row: id, title, text; other fields go to metadata."""
    text_key = next((k for k in _TEXT_FIELDS if isinstance(row.get(k), str)), None)
    id_key = next((k for k in _ID_FIELDS if row.get(k) not in (None, "")), None)
    doc_id = str(row[id_key]) if id_key else fallback_id
    title = str(row.get("title") or "").strip()
    if text_key is None:
        return None
    rest = {k: v for k, v in row.items() if k not in (text_key, id_key, "title")}
    return Document(doc_id, str(row[text_key]), title, str(path), rest)


def _load_jsonl(path: Path) -> Loaded:
    documents: list[Document] = []
    warnings: list[str] = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            warnings.append(f"{path}: line {number} skipped: invalid JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            warnings.append(f"{path}: line {number} skipped: not a JSON object")
            continue
        document = _row_document(row, path, f"{path}#L{number}")
        if document is None:
            fields = "/".join(_TEXT_FIELDS)
            warnings.append(f"{path}: line {number} skipped: no text field ({fields})")
            continue
        documents.append(document)
    if not documents and warnings:
        first = warnings[0].removeprefix(f"{path}: ")
        raise LoadError(path, f"no valid rows ({len(warnings)} skipped; first: {first})")
    return Loaded(documents, warnings)


def _load_csv(path: Path) -> Loaded:
    text = _read_text(path)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:_SNIFF_BYTES], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows: Iterator[dict[str, Any]] = csv.DictReader(io.StringIO(text), dialect=dialect)
    documents: list[Document] = []
    try:
        for number, row in enumerate(rows, start=2):
            row = {str(k).strip(): (v or "").strip() for k, v in row.items() if k is not None}
            document = _row_document(row, path, f"{path}#row{number}")
            if document is None:
                # A plain table: every column becomes a "column: value" line.
                body = "\n".join(f"{k}: {v}" for k, v in row.items() if v)
                document = Document(f"{path}#row{number}", body, path.stem, str(path), {"row": number})
            documents.append(document)
    except csv.Error as exc:
        raise LoadError(path, f"malformed CSV: {exc}") from None
    return Loaded(documents)
