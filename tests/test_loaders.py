"""Loaders: every supported format from real files, and every way a file can be unusable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_pdf, write_pdf
from tests.formats import make_docx, make_epub, make_ipynb, make_pptx, make_text_formats, make_xlsx
from tools.ingest.loaders import SUPPORTED_SUFFIXES, LoadError, find_files, load_file


def _reason(path: Path) -> str:
    with pytest.raises(LoadError) as caught:
        load_file(path)
    assert caught.value.path == str(path.resolve())
    assert str(path.resolve()) in str(caught.value)
    return caught.value.reason


def _textless_pdf(path: Path) -> Path:
    """A valid PDF whose only page draws a line: no text operators at all."""
    make_pdf(path, ["x"])
    data = path.read_bytes()
    text_ops = b"BT /F1 12 Tf 72 720 Td (x) Tj ET"
    drawing = b"0 0 m 100 100 l S".ljust(len(text_ops))  # same length keeps the xref offsets valid
    path.write_bytes(data.replace(text_ops, drawing))
    return path


# -- formats ---------------------------------------------------------------------------------


def test_txt_title_is_the_file_stem(corpus_dir: Path) -> None:
    [doc] = load_file(corpus_dir / "notes.txt").documents
    path = str((corpus_dir / "notes.txt").resolve())
    assert (doc.doc_id, doc.title, doc.path) == (path, "notes", path)
    assert doc.text.startswith("The Eiffel Tower is 330 metres tall")


def test_markdown_title_from_first_heading_else_stem(tmp_path: Path, corpus_dir: Path) -> None:
    [doc] = load_file(corpus_dir / "guide.md").documents
    assert doc.title == "Rotating keys"
    assert "press Rotate" in doc.text

    plain = tmp_path / "plain-notes.markdown"
    plain.write_text("Some text\n## Not a title\n")
    assert load_file(plain).documents[0].title == "plain-notes"


def test_html_title_drops_script_and_style_and_breaks_blocks(corpus_dir: Path) -> None:
    [doc] = load_file(corpus_dir / "sub" / "page.html").documents
    assert doc.title == "Penguins"
    assert doc.text.split("\n\n") == ["Emperor penguins", "Emperor penguins breed in the Antarctic winter."]
    assert "color" not in doc.text
    assert "var x" not in doc.text


def test_html_without_closing_head_keeps_body_text(tmp_path: Path) -> None:
    # </head> and <body> are optional in HTML; the body must not be mistaken for head content.
    page = tmp_path / "page.htm"
    page.write_text("<html><head><title>Short</title><meta charset=utf-8><p>Body one<li>Body &amp; two</html>")
    [doc] = load_file(page).documents
    assert doc.title == "Short"
    assert doc.text.split("\n\n") == ["Body one", "Body & two"]


def test_html_without_title_uses_stem(tmp_path: Path) -> None:
    page = tmp_path / "untitled.html"
    page.write_text("<p>Just a paragraph.</p>")
    assert load_file(page).documents[0].title == "untitled"


def test_pdf_one_document_per_page(corpus_dir: Path) -> None:
    loaded = load_file(corpus_dir / "paper.pdf")
    assert [d.metadata for d in loaded.documents] == [{"page": 1}, {"page": 2}]
    assert [d.text.strip() for d in loaded.documents] == ["Quantum computers use qubits.", "Qubits can be entangled."]
    assert {d.title for d in loaded.documents} == {"paper"}
    assert {d.doc_id for d in loaded.documents} == {str((corpus_dir / "paper.pdf").resolve())}
    assert loaded.warnings == []


def test_csv_with_text_column_keeps_row_id_and_title(corpus_dir: Path) -> None:
    [doc] = load_file(corpus_dir / "table.csv").documents
    assert (doc.doc_id, doc.title, doc.text) == ("r1", "Volcanoes", "Mount Etna is an active volcano in Sicily.")
    assert doc.metadata == {}


def test_csv_plain_table_becomes_column_value_lines(tmp_path: Path) -> None:
    table = tmp_path / "towers.csv"
    table.write_text("name,height\nEiffel Tower,330\nBig Ben,96\n")
    docs = load_file(table).documents
    assert [d.text for d in docs] == ["name: Eiffel Tower\nheight: 330", "name: Big Ben\nheight: 96"]
    assert [d.metadata for d in docs] == [{"row": 2}, {"row": 3}]
    assert [d.doc_id for d in docs] == [f"{table.resolve()}#row2", f"{table.resolve()}#row3"]
    assert {d.title for d in docs} == {"towers"}


def test_jsonl_beir_rows_keep_ids_and_extra_fields(tmp_path: Path, corpus_dir: Path) -> None:
    docs = load_file(corpus_dir / "rows.jsonl").documents
    assert [(d.doc_id, d.title) for d in docs] == [("d1", "Photosynthesis"), ("d2", "Tides")]

    rows = tmp_path / "extra.jsonl"
    rows.write_text(json.dumps({"_id": 7, "title": "T", "text": "Body.", "lang": "en", "tags": ["a"]}) + "\n")
    [doc] = load_file(rows).documents
    assert (doc.doc_id, doc.title, doc.text) == ("7", "T", "Body.")
    assert doc.metadata == {"lang": "en", "tags": ["a"]}


def test_jsonl_bad_lines_are_warnings_and_the_rest_loads(tmp_path: Path) -> None:
    rows = tmp_path / "mixed.jsonl"
    rows.write_text(
        '{"_id": "a", "text": "First row."}\n'
        "{not json\n"
        "\n"
        '{"_id": "c", "title": "No text here"}\n'
        "[1, 2]\n"
        '{"_id": "e", "content": "Last row."}\n'
    )
    loaded = load_file(rows)
    assert [(d.doc_id, d.text) for d in loaded.documents] == [("a", "First row."), ("e", "Last row.")]
    assert len(loaded.warnings) == 3
    line2, line4, line5 = loaded.warnings
    assert "line 2" in line2
    assert "invalid JSON" in line2
    assert "line 4" in line4
    assert "no text field" in line4
    assert "line 5" in line5
    assert "not a JSON object" in line5


def test_jsonl_with_only_bad_rows_raises(tmp_path: Path) -> None:
    rows = tmp_path / "bad.jsonl"
    rows.write_text('{"_id": "a"}\nnot json\n')
    reason = _reason(rows)
    assert "no valid rows" in reason
    assert "2 skipped" in reason
    assert "line 1" in reason
    assert str(rows) not in reason


def test_utf16_with_bom_decodes(tmp_path: Path) -> None:
    note = tmp_path / "wide.txt"
    note.write_bytes("Crème brûlée, naïve café.".encode("utf-16"))
    assert load_file(note).documents[0].text == "Crème brûlée, naïve café."


def test_utf8_bom_is_stripped_before_the_markdown_title(tmp_path: Path) -> None:
    page = tmp_path / "bom.md"
    page.write_bytes("# Título\n\nTexto.".encode("utf-8-sig"))
    assert load_file(page).documents[0].title == "Título"


# -- bad files -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".txt", ".md", ".html", ".csv", ".jsonl"])
def test_binary_file_is_refused(tmp_path: Path, suffix: str) -> None:
    blob = tmp_path / f"blob{suffix}"
    blob.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert "binary content (NUL bytes)" in _reason(blob)


def test_latin1_file_is_refused_with_a_conversion_hint(tmp_path: Path) -> None:
    note = tmp_path / "latin.txt"
    note.write_bytes("Le café est chaud.".encode("latin-1"))
    reason = _reason(note)
    assert "not valid UTF-8" in reason
    assert "0xe9" in reason
    assert "convert it to UTF-8" in reason


@pytest.mark.parametrize(
    ("name", "content"),
    [("empty.txt", b""), ("blank.md", b"  \n\n\t \n"), ("hollow.html", b"<html><script>x()</script></html>")],
)
def test_empty_file_is_refused(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert "empty" in _reason(path)


def test_corrupt_pdf_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n" + b"\x8f garbage \xfe" * 200 + b"\n%%EOF\n")
    assert _reason(broken).startswith("corrupt PDF")


def test_truncated_pdf_is_refused(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "cut.pdf", ["Some text."])
    pdf.write_bytes(pdf.read_bytes()[:120])
    assert _reason(pdf).startswith("corrupt PDF")


def test_non_pdf_named_pdf_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "report.pdf"
    fake.write_text("This is a plain text file wearing a .pdf suffix.")
    assert "not a PDF (no %PDF- header)" in _reason(fake)


def test_pdf_without_text_is_refused_with_an_ocr_hint(tmp_path: Path) -> None:
    reason = _reason(_textless_pdf(tmp_path / "scan.pdf"))
    assert "no extractable text" in reason
    assert "OCR" in reason


def test_unsupported_suffix_is_refused(tmp_path: Path) -> None:
    doc = tmp_path / "letter.odt"
    doc.write_text("text")
    assert "unsupported file type '.odt'" in _reason(doc)


def test_missing_file_is_a_load_error(tmp_path: Path) -> None:
    assert "cannot read" in _reason(tmp_path / "gone.txt")


# -- find_files ------------------------------------------------------------------------------


def test_find_files_recurses_skips_hidden_and_sorts(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    # Created out of order: the result must not depend on creation or directory order.
    for rel in ["z.md", "b/y.txt", "a/c/x.jsonl", "a/w.html", ".git/HEAD.txt", "a/.cache/v.txt", "a/.secret.md"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("text")
    files, problems = find_files([root])
    assert files == [(root / rel).resolve() for rel in ["z.md", "a/w.html", "a/c/x.jsonl", "b/y.txt"]]
    # Nothing left out silently: the tool folder and the hidden entries come back with reasons.
    reasons = {Path(p.path).relative_to(root).as_posix(): p.reason for p in problems}
    assert set(reasons) == {".git", "a/.cache", "a/.secret.md"}
    assert "tool" in reasons[".git"]
    assert "--hidden" in reasons["a/.secret.md"]
    assert find_files([root])[0] == files


def test_find_files_reports_missing_and_unsupported_paths(tmp_path: Path, corpus_dir: Path) -> None:
    (corpus_dir / "photo.png").write_bytes(b"\x89PNG")
    (corpus_dir / "Makefile").write_text("all:")
    files, problems = find_files([corpus_dir, tmp_path / "missing", corpus_dir / "notes.txt"])
    assert len(files) == 6  # the six good files, notes.txt once although named twice
    assert all(f.suffix in SUPPORTED_SUFFIXES for f in files)
    reasons = {Path(p.path).name: p.reason for p in problems}
    assert set(reasons) == {"Makefile", "missing", "photo.png", ".hidden.txt", "notes.txt"}
    assert reasons["notes.txt"].startswith("the same file as")  # named twice, taken once
    assert "--hidden" in reasons[".hidden.txt"]
    assert reasons["missing"] == "no such file or folder"
    assert reasons["photo.png"].startswith("unsupported file type '.png'")
    assert reasons["Makefile"].startswith("unsupported file type '(none)'")
    assert ".pdf" in reasons["photo.png"]  # lists what is supported


# -- office formats, EPUB, notebooks, MDX, reStructuredText ------------------------------------


def test_docx_keeps_its_title_heading_and_table(tmp_path: Path) -> None:
    [doc] = load_file(make_docx(tmp_path / "report.docx")).documents
    assert doc.title == "Glacier handbook"  # from the document's properties
    assert "# Glaciers" in doc.text
    assert "Aletsch Glacier is the largest" in doc.text
    assert "| Aletsch | 23 km |" in doc.text


def test_pptx_is_one_document_per_slide(tmp_path: Path) -> None:
    docs = load_file(make_pptx(tmp_path / "deck.pptx")).documents
    assert [d.metadata for d in docs] == [{"slide": 1}, {"slide": 2}]
    assert "Halley's Comet" in docs[0].text
    assert "away from the Sun" in docs[1].text
    assert {d.title for d in docs} == {"Comets"}  # the deck's: its first slide's title


def test_xlsx_is_one_document_per_sheet_as_a_table(tmp_path: Path) -> None:
    docs = load_file(make_xlsx(tmp_path / "sheet.xlsx")).documents
    assert [d.metadata for d in docs] == [{"sheet": "Rivers"}, {"sheet": "Lakes"}]
    assert "| Danube | 2850 |" in docs[0].text
    assert "| Baikal | 1642 |" in docs[1].text


def test_epub_and_notebook_titles(tmp_path: Path) -> None:
    [book] = load_file(make_epub(tmp_path / "book.epub")).documents
    assert book.title == "Lighthouses"
    assert "Lighthouse of Alexandria" in book.text
    [notebook] = load_file(make_ipynb(tmp_path / "analysis.ipynb")).documents
    assert notebook.title == "Tidal analysis"
    assert "Spring tides" in notebook.text
    assert "print(max(heights))" in notebook.text


def test_mdx_drops_imports_and_rst_title_is_the_underlined_line(tmp_path: Path) -> None:
    made = make_text_formats(tmp_path)
    [mdx] = load_file(made["page.mdx"]).documents
    assert mdx.title == "Volcanoes"
    assert "import Chart" not in mdx.text
    [rst] = load_file(made["manual.rst"]).documents
    assert rst.title == "Reefs"


def test_pdf_tables_come_out_as_markdown_tables(tmp_path: Path) -> None:
    pdf = tmp_path / "table.pdf"
    _ruled_table_pdf(pdf)
    [page] = load_file(pdf).documents
    assert "| element | symbol |" in page.text
    assert "| Gold | Au |" in page.text
    assert "Table of symbols" in page.text  # the text around the table stays, in order
    assert page.text.index("Table of symbols") < page.text.index("| Gold | Au |")


def _ruled_table_pdf(path: Path) -> None:
    """A one-page PDF: a line of text above a 2x3 table drawn with ruling lines."""
    rows = [("element", "symbol"), ("Gold", "Au"), ("Iron", "Fe")]
    ops = ["BT /F1 12 Tf 72 740 Td (Table of symbols) Tj ET"]
    top, height, left, width = 720, 20, 72, 120
    for i, (a, b) in enumerate(rows):
        y = top - (i + 1) * height + 6
        ops.append(f"BT /F1 10 Tf {left + 4} {y} Td ({a}) Tj ET")
        ops.append(f"BT /F1 10 Tf {left + width + 4} {y} Td ({b}) Tj ET")
    for i in range(len(rows) + 1):
        y = top - i * height
        ops.append(f"{left} {y} m {left + 2 * width} {y} l S")
    for x in (left, left + width, left + 2 * width):
        ops.append(f"{x} {top} m {x} {top - len(rows) * height} l S")
    stream = "\n".join(ops).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    write_pdf(path, objects)


def test_zip_bomb_office_file_is_refused(tmp_path: Path) -> None:
    import zipfile

    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * (200 * 2**20))
    assert "likely zip bomb" in _reason(bomb)
