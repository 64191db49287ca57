"""One real file of every format the loaders read, written by the libraries that write them.

Each maker puts a distinctive fact into its file, so a test can check the text arrived (and
where: page, slide, sheet).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import make_pdf


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Glacier handbook"
    document.add_heading("Glaciers", level=1)
    document.add_paragraph("The Aletsch Glacier is the largest glacier in the Alps.")
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, [("glacier", "length"), ("Aletsch", "23 km")], strict=True):
        for cell, value in zip(row.cells, cells, strict=True):
            cell.text = value
    document.save(str(path))
    return path


def make_pptx(path: Path) -> Path:
    from pptx import Presentation

    deck = Presentation()
    slides = [
        ("Comets", "Halley's Comet returns every 76 years."),
        ("Tails", "A comet's tail points away from the Sun."),
    ]
    for title, body in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(str(path))
    return path


def make_xlsx(path: Path) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Rivers"
    sheet.append(["river", "length_km"])
    sheet.append(["Danube", 2850])
    lakes = book.create_sheet("Lakes")
    lakes.append(["lake", "depth_m"])
    lakes.append(["Baikal", 1642])
    book.save(str(path))
    return path


def make_epub(path: Path) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("tree-test-1")
    book.set_title("Lighthouses")
    book.set_language("en")
    chapter = epub.EpubHtml(title="Pharos", file_name="pharos.xhtml", lang="en")
    chapter.content = "<h1>Pharos</h1><p>The Lighthouse of Alexandria stood on the island of Pharos.</p>"
    book.add_item(chapter)
    book.toc = [chapter]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", chapter]
    epub.write_epub(str(path), book)
    return path


def make_ipynb(path: Path) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Tidal analysis\n\nSpring tides happen at new and full moon."),
        nbformat.v4.new_code_cell("heights = [1.2, 3.4]\nprint(max(heights))"),
    ]
    nbformat.write(notebook, str(path))
    return path


def make_text_formats(root: Path) -> dict[str, Path]:
    """The plain-text formats, each with its own fact."""
    files = {
        "notes.txt": "The Eiffel Tower is 330 metres tall.",
        "guide.md": "# Bees\n\nA waggle dance tells other bees where food is.",
        "page.mdx": "import Chart from './chart'\n\n# Volcanoes\n\nMount Etna is in Sicily.\n\n<Chart />\n",
        "manual.rst": "Reefs\n=====\n\nCoral reefs cover less than one percent of the ocean floor.\n",
        "page.html": "<html><head><title>Penguins</title></head><p>Emperor penguins breed in winter.</p></html>",
        "table.csv": "_id,title,text\nr1,Deserts,The Atacama is the driest desert.\n",
    }
    made = {}
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
        made[name] = root / name
    return made


BINARY_MAKERS: dict[str, Callable[[Path], Path]] = {
    "report.docx": make_docx,
    "deck.pptx": make_pptx,
    "sheet.xlsx": make_xlsx,
    "book.epub": make_epub,
    "analysis.ipynb": make_ipynb,
    "paper.pdf": lambda p: make_pdf(p, ["Quantum computers use qubits.", "Qubits can be entangled."]),
}

FACTS = {
    "notes.txt": "330 metres",
    "guide.md": "waggle dance",
    "page.mdx": "Mount Etna",
    "manual.rst": "one percent",
    "page.html": "Emperor penguins",
    "table.csv": "Atacama",
    "report.docx": "Aletsch Glacier",
    "deck.pptx": "Halley",
    "sheet.xlsx": "Danube",
    "book.epub": "Alexandria",
    "analysis.ipynb": "Spring tides",
    "paper.pdf": "qubits",
    "rows.jsonl": "photosynthesis",
}
"""A phrase of each file's text."""


def jsonl_rows() -> str:
    """Good rows and every row that once aborted a whole ingest."""
    deep = "[" * 100_000 + "]" * 100_000
    return "\n".join(
        [
            json.dumps({"_id": "ok1", "title": "Leaves", "text": "Leaves use photosynthesis."}),
            '{"_id": "deep", "text": "x", "nested": ' + deep + "}",
            '{"_id": "big", "text": "x", "n": ' + "7" * 5000 + "}",
            '{"_id": "nan", "text": "x", "score": NaN}',
            '{"_id": "surrogate", "text": "Lone \\ud800 surrogate row.", "tag": "\\udfff"}',
        ]
    )
