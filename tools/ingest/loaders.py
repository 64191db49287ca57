"""File loaders: text, Markdown (and MDX), reStructuredText, HTML, PDF, CSV, JSONL, and through
Microsoft's ``markitdown`` converters Word, PowerPoint, Excel, EPUB and Jupyter notebooks.

A file that cannot be read raises :class:`LoadError` with a reason a user can act on; ingestion
reports it and goes on with the other files. Any exception a parser raises on one file is that
file's :class:`LoadError`, never the batch's. Problems inside a file that do not spoil the rest
(one bad JSONL row, one unreadable PDF page) come back as warnings beside the documents, with the
line or page. Text is cleaned (:func:`~tools.ingest._clean.clean_text`: no lone surrogates, no
control characters or terminal escapes) before anything hashes, stores or prints it.

Citations keep where a passage is: PDF documents are pages (``metadata["page"]``), slides are
slides (``metadata["slide"]``), spreadsheets are sheets (``metadata["sheet"]``).
"""

from __future__ import annotations

import csv
import errno
import html
import io
import json
import logging
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from tools.ingest._clean import clean_metadata, clean_text, path_text
from tools.ingest._walk import WalkOptions, too_large, walk

__all__ = ["SUPPORTED_SUFFIXES", "Document", "LoadError", "Loaded", "find_files", "load_file"]

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
    """Anything else worth keeping (page, slide or sheet, CSV columns, JSONL fields, user metadata)."""


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


def find_files(paths: Iterable[str | Path], *, max_bytes: int | None = None) -> tuple[list[Path], list[LoadError]]:
    """Expand files and folders with the default walk rules (see :mod:`tools.ingest._walk`).

    Returns the files in a stable order, and a :class:`LoadError` for every entry left out (hidden,
    ignored by ``.gitignore``, unsupported, a symlink outside the paths, not a regular file...).
    """
    found = walk(paths, WalkOptions(frozenset(SUPPORTED_SUFFIXES), max_file_bytes=max_bytes))
    return [f.path for f in found.files], [LoadError(s.path, s.reason) for s in found.skipped]


def load_file(path: str | Path, *, max_bytes: int | None = None, identity: tuple[int, int] | None = None) -> Loaded:
    """Load one regular file by its suffix; raises :class:`LoadError` when nothing usable is in it.

    Args:
        path: The file.
        max_bytes: Refuse files larger than this.
        identity: ``(device, inode)`` the file must have (what a walk saw): a file swapped since,
            e.g. for a symlink to outside the walked folders, is refused.
    """
    # With an identity the path is a walk's real path: it is opened as it is (a symlink swapped in
    # since is refused); without one, symlinks are resolved first.
    path = Path(path) if identity is not None else Path(path).resolve()
    suffix = path.suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        kinds = " ".join(SUPPORTED_SUFFIXES)
        raise LoadError(path, f"unsupported file type {suffix or '(none)'!r}; supported: {kinds}")
    try:
        loaded = loader(path, _read_regular(path, max_bytes, identity))
    except LoadError:
        raise
    except OSError as exc:
        raise LoadError(path, f"cannot read: {exc.strerror or exc}") from None
    except RecursionError:
        raise LoadError(path, "nested too deeply to parse") from None
    except MemoryError:
        raise  # the caller's to report: out of memory is about the limits, not the file's format
    except Exception as exc:  # a parser's failure on one file is that file's problem
        raise LoadError(path, f"could not be parsed ({type(exc).__name__}: {_short(exc)})") from None
    cleaned = [_cleaned(d) for d in loaded.documents]
    documents = [d for d in cleaned if d.text.strip()]
    if not documents:
        raise LoadError(path, "empty: no text to ingest")
    warnings = [clean_text(w) for w in loaded.warnings]
    if len(documents) < len(cleaned):  # say so: a blank row or page is not silently gone
        blank = [d for d in cleaned if not d.text.strip()]
        where = ", ".join(_where(d) for d in blank[:10]) + (" ..." if len(blank) > 10 else "")
        warnings.append(f"{path_text(path)}: {len(blank)} empty parts skipped (no text): {where}")
    return Loaded(documents, warnings)


def _where(document: Document) -> str:
    for key in ("page", "slide", "sheet", "row"):
        if key in document.metadata:
            return f"{key} {document.metadata[key]}"
    return document.doc_id


def _read_regular(path: Path, max_bytes: int | None, identity: tuple[int, int] | None) -> bytes:
    """The bytes of a regular file. Opened without blocking, without following a final symlink,
    and checked after opening, so a FIFO, or a file swapped after the walk (for a FIFO, or for a
    link to a file outside the walked folders) is refused instead of hanging or leaking."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LoadError(path, "became a symlink after the walk; not followed") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LoadError(path, "not a regular file (a FIFO, socket or device); only regular files are read")
        if identity is not None and (info.st_dev, info.st_ino) != identity:
            raise LoadError(path, "replaced since the walk saw it (a different file is there now); not read")
        if max_bytes is not None and info.st_size > max_bytes:
            raise LoadError(path, too_large(info.st_size, max_bytes))
        data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:  # it grew while being read
        raise LoadError(path, too_large(len(data), max_bytes))
    return data


def _cleaned(document: Document) -> Document:
    metadata = clean_metadata(document.metadata) if document.metadata else document.metadata
    doc_id = path_text(document.doc_id) if document.doc_id.startswith(document.path) else clean_text(document.doc_id)
    return Document(doc_id, clean_text(document.text), clean_text(document.title), path_text(document.path), metadata)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
    return text if len(text) <= limit else text[:limit] + "..."


# -- text ------------------------------------------------------------------------------------


def _decode(path: Path, data: bytes) -> str:
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


def _load_text(path: Path, data: bytes) -> Loaded:
    return Loaded([Document(str(path), _decode(path, data), path.stem, str(path))])


def _load_markdown(path: Path, data: bytes) -> Loaded:
    text = _decode(path, data)
    return Loaded([Document(str(path), text, _markdown_title(text) or path.stem, str(path))])


_MDX_CODE = re.compile(r"^(?:import|export)\s.*$", re.MULTILINE)


def _load_mdx(path: Path, data: bytes) -> Loaded:
    """MDX is Markdown with JSX: the ``import``/``export`` lines are code, not text; the rest stays
    (component tags are few and their text is often the content)."""
    text = _MDX_CODE.sub("", _decode(path, data))
    return Loaded([Document(str(path), text, _markdown_title(text) or path.stem, str(path))])


def _markdown_title(text: str) -> str:
    for line in text.splitlines()[:50]:
        if line.startswith("# "):
            return line[2:].strip()
    return ""


_RST_ADORNMENT = re.compile(r"^([=\-~`#*^\"'+:._])\1{2,}\s*$")


def _load_rst(path: Path, data: bytes) -> Loaded:
    """reStructuredText: the title is the first underlined (or over- and underlined) line."""
    text = _decode(path, data)
    lines = text.splitlines()
    title = ""
    for i, line in enumerate(lines[:80]):
        following = lines[i + 1] if i + 1 < len(lines) else ""
        underlined = _RST_ADORNMENT.match(following) and len(following.rstrip()) >= len(line.rstrip())
        if line.strip() and not _RST_ADORNMENT.match(line) and underlined:
            title = line.strip()
            break
    return Loaded([Document(str(path), text, title or path.stem, str(path))])


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


def _load_html(path: Path, data: bytes) -> Loaded:
    parser = _TextExtractor()
    parser.feed(_decode(path, data))
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    text = "\n\n".join(line for line in lines if line)  # each line is a block: a paragraph
    title = " ".join("".join(parser.title_parts).split()) or path.stem
    return Loaded([Document(str(path), text, title, str(path))])


# -- pdf -------------------------------------------------------------------------------------


def _load_pdf(path: Path, data: bytes) -> Loaded:
    """One document per page, through pdfplumber: text in reading order with the page's tables
    as Markdown tables where they stand (pypdf ran a table's cells together)."""
    # pdfminer logs every repair it attempts; the outcome is reported here, once, with the file name.
    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    import pdfplumber
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect

    if b"%PDF-" not in data[:1024]:
        raise LoadError(path, "not a PDF (no %PDF- header); the file is corrupt or misnamed")
    try:
        pdf = pdfplumber.open(io.BytesIO(data))
        pages = list(pdf.pages)
    except (PDFPasswordIncorrect, PDFEncryptionError):
        raise LoadError(path, "encrypted PDF; decrypt it first (e.g. qpdf --decrypt)") from None
    except Exception as exc:  # pdfminer raises many kinds on broken files
        raise LoadError(path, f"corrupt PDF: {_short(exc)}") from None
    documents: list[Document] = []
    warnings: list[str] = []
    with pdf:
        title = _pdf_title(pdf.metadata) or path.stem
        for number, page in enumerate(pages, start=1):
            try:
                text = _pdf_page_text(page)
            except Exception as exc:  # one bad page spoils only itself
                warnings.append(f"{path}: page {number} skipped: {_short(exc)}")
                continue
            finally:
                page.close()
            if text.strip():
                documents.append(Document(str(path), text, title, str(path), {"page": number}))
    if not documents:
        if warnings:
            raise LoadError(path, f"corrupt PDF: no page could be read ({warnings[0].removeprefix(f'{path}: ')})")
        raise LoadError(path, "no extractable text (a scanned PDF? run OCR first, e.g. ocrmypdf)")
    return Loaded(documents, warnings)


def _pdf_title(metadata: dict[str, Any]) -> str:
    title = metadata.get("Title")
    if isinstance(title, bytes):
        title = title.decode("utf-8", errors="replace")
    return " ".join(str(title or "").split())


def _pdf_page_text(page: Any) -> str:
    """The page's text top to bottom, each table (pdfplumber's ruling-line detection) replaced
    by a Markdown table at its place."""
    tables = sorted(page.find_tables(), key=lambda t: t.bbox[1])
    if not tables:
        return page.extract_text() or ""
    parts: list[str] = []
    top = page.bbox[1]
    for table in tables:
        _, t_top, _, t_bottom = table.bbox
        if t_top > top:
            parts.append(page.crop((page.bbox[0], top, page.bbox[2], t_top)).extract_text() or "")
        parts.append(_markdown_table(table.extract()))
        top = max(top, t_bottom)
    if top < page.bbox[3]:
        parts.append(page.crop((page.bbox[0], top, page.bbox[2], page.bbox[3])).extract_text() or "")
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def _markdown_table(rows: list[list[str | None]]) -> str:
    cells = [[" ".join((c or "").split()).replace("|", "\\|") for c in row] for row in rows if row]
    if not cells:
        return ""
    width = max(len(r) for r in cells)
    cells = [r + [""] * (width - len(r)) for r in cells]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(lines)


# -- office formats, EPUB, notebooks (markitdown) ----------------------------------------------

_ZIP_EXPANSION = 40
"""A zip-based file (docx, pptx, xlsx, epub) may expand to this many times its size before it is
refused as a likely zip bomb (real documents expand 2-10x)."""


def _markitdown(path: Path, data: bytes, converter: str) -> tuple[str, str]:
    """Markdown and title of a file, from one of markitdown's converters (called directly: no
    file-type guessing, no plugins, nothing fetched)."""
    if converter != "IpynbConverter":
        _check_zip(path, data)
    from markitdown import MissingDependencyException, StreamInfo, converters

    try:
        result = getattr(converters, converter)().convert(
            io.BytesIO(data), StreamInfo(extension=path.suffix.lower(), filename=path.name)
        )
    except MissingDependencyException:
        msg = f"needs markitdown's {path.suffix.lower().lstrip('.')} extra: pip install 'markitdown[docx,pptx,xlsx]'"
        raise LoadError(path, msg) from None
    markdown = result.markdown or ""
    return markdown, (result.title or "").strip()


_ZIP_MAX_EXPANDED = 2 * 2**30
"""Whatever the ratio, a zip-based file expanding beyond 2 GB is refused."""


def _check_zip(path: Path, data: bytes) -> None:
    """Refuse a likely zip bomb by decompressing every member in 1 MB steps and counting what
    really comes out (the sizes an archive declares can lie), before any converter reads it."""
    import zipfile
    import zlib

    budget = min(_ZIP_EXPANSION * max(len(data), 1 << 20), _ZIP_MAX_EXPANDED)
    expanded = 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.infolist():
                with archive.open(member) as stream:
                    while piece := stream.read(1 << 20):
                        expanded += len(piece)
                        if expanded > budget:
                            msg = (
                                f"expands to more than {budget / 2**20:.0f} MB from {len(data) / 2**20:.1f} MB; "
                                "refused as a likely zip bomb"
                            )
                            raise LoadError(path, msg)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise LoadError(path, f"corrupt {path.suffix.lower()} ({_short(exc)})") from None


def _office_title(data: bytes) -> str:
    """The title in an Office file's properties (``docProps/core.xml``), or ``""``."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            core = archive.read("docProps/core.xml")[:65536].decode("utf-8", errors="replace")
    except (KeyError, zipfile.BadZipFile):
        return ""
    found = re.search(r"<dc:title>([^<]*)</dc:title>", core)
    return html.unescape(" ".join(found.group(1).split())) if found else ""


def _load_docx(path: Path, data: bytes) -> Loaded:
    markdown, title = _markitdown(path, data, "DocxConverter")
    title = title or _office_title(data) or _markdown_title(markdown) or path.stem
    return Loaded([Document(str(path), markdown, title, str(path))])


def _load_epub(path: Path, data: bytes) -> Loaded:
    markdown, title = _markitdown(path, data, "EpubConverter")
    return Loaded([Document(str(path), markdown, title or _markdown_title(markdown) or path.stem, str(path))])


def _load_ipynb(path: Path, data: bytes) -> Loaded:
    markdown, title = _markitdown(path, data, "IpynbConverter")
    return Loaded([Document(str(path), markdown, title or _markdown_title(markdown) or path.stem, str(path))])


_SLIDE = re.compile(r"^<!-- Slide number: (\d+) -->$", re.MULTILINE)


def _load_pptx(path: Path, data: bytes) -> Loaded:
    """One document per slide (``metadata["slide"]``); the deck's title is the first slide's."""
    markdown, title = _markitdown(path, data, "PptxConverter")
    marks = list(_SLIDE.finditer(markdown))
    slides = [
        (int(m.group(1)), markdown[m.end() : marks[i + 1].start() if i + 1 < len(marks) else len(markdown)])
        for i, m in enumerate(marks)
    ]
    first_slide_title = next((t for _, body in slides if (t := _markdown_title(body))), "")
    deck = title or _office_title(data) or first_slide_title or path.stem
    documents = [Document(str(path), body.strip(), deck, str(path), {"slide": n}) for n, body in slides]
    return Loaded(documents or [Document(str(path), markdown, deck, str(path))])


_SHEET = re.compile(r"^## (.+)$", re.MULTILINE)


def _load_xlsx(path: Path, data: bytes) -> Loaded:
    """One document per sheet (``metadata["sheet"]``), its cells as a Markdown table."""
    markdown, _ = _markitdown(path, data, "XlsxConverter")
    marks = list(_SHEET.finditer(markdown))
    documents = [
        Document(
            str(path),
            markdown[m.end() : marks[i + 1].start() if i + 1 < len(marks) else len(markdown)].strip(),
            path.stem,
            str(path),
            {"sheet": m.group(1).strip()},
        )
        for i, m in enumerate(marks)
    ]
    return Loaded(documents or [Document(str(path), markdown, path.stem, str(path))])


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


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load_jsonl(path: Path, data: bytes) -> Loaded:
    documents: list[Document] = []
    warnings: list[str] = []
    for number, line in enumerate(_decode(path, data).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_no_constants)
        except json.JSONDecodeError as exc:
            warnings.append(f"{path}: line {number} skipped: invalid JSON ({exc.msg})")
            continue
        except RecursionError:
            warnings.append(f"{path}: line {number} skipped: nested too deeply")
            continue
        except ValueError as exc:  # NaN/Infinity, an integer beyond Python's digit limit
            warnings.append(f"{path}: line {number} skipped: {_short(exc)}")
            continue
        if not isinstance(row, dict):
            warnings.append(f"{path}: line {number} skipped: not a JSON object")
            continue
        try:
            document = _row_document(row, path, f"{path}#L{number}")
        except Exception as exc:  # e.g. an id too long to print; one row, not the file
            warnings.append(f"{path}: line {number} skipped: {type(exc).__name__}: {_short(exc)}")
            continue
        if document is None:
            fields = "/".join(_TEXT_FIELDS)
            warnings.append(f"{path}: line {number} skipped: no text field ({fields})")
            continue
        documents.append(document)
    if not documents and warnings:
        first = warnings[0].removeprefix(f"{path}: ")
        raise LoadError(path, f"no valid rows ({len(warnings)} skipped; first: {first})")
    return Loaded(documents, warnings)


_CSV_FIELD_LIMIT = 64 * 2**20  # Python's default (128 KB) refuses real cells: long text columns


def _load_csv(path: Path, data: bytes) -> Loaded:
    text = _decode(path, data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:_SNIFF_BYTES], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    rows: Iterator[dict[str, Any]] = iter(reader)
    documents: list[Document] = []
    warnings: list[str] = []
    number = 1
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            line = reader.line_num
            if not documents:
                raise LoadError(path, f"malformed CSV after line {line}: {exc}") from None
            warnings.append(f"{path}: after line {line}: malformed CSV ({exc}); the rest of the file is not read")
            break
        number += 1
        row = {str(k).strip(): (v or "").strip() for k, v in row.items() if k is not None}
        document = _row_document(row, path, f"{path}#row{number}")
        if document is None:
            # A plain table: every column becomes a "column: value" line.
            body = "\n".join(f"{k}: {v}" for k, v in row.items() if v)
            document = Document(f"{path}#row{number}", body, path.stem, str(path), {"row": number})
        documents.append(document)
    return Loaded(documents, warnings)


_LOADERS: dict[str, Callable[[Path, bytes], Loaded]] = {
    ".txt": _load_text,
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".mdx": _load_mdx,
    ".rst": _load_rst,
    ".html": _load_html,
    ".htm": _load_html,
    ".pdf": _load_pdf,
    ".csv": _load_csv,
    ".jsonl": _load_jsonl,
    ".docx": _load_docx,
    ".pptx": _load_pptx,
    ".xlsx": _load_xlsx,
    ".epub": _load_epub,
    ".ipynb": _load_ipynb,
}

SUPPORTED_SUFFIXES = tuple(_LOADERS)
"""The file types :func:`load_file` reads."""
