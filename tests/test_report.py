"""Run reports: Markdown tables, a well-formed HTML page with three SVG plots, empty runs, comparisons."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from evals.report import render_compare_markdown, render_html, render_markdown, write_report
from tests.browser import screenshot_path

SCRIPT = '<script>alert("x")</script>'
DASH = "\u2013"  # how the report prints a missing value


def _row(i: int) -> dict[str, Any]:
    # f1 = (7i mod 30) / 30 is a permutation of 0..29/30, so the worst items have a single order.
    f1 = (i * 7 % 30) / 30
    multi_hop = i >= 18
    row: dict[str, Any] = {
        "id": f"q{i:02d}",
        "category": "multi-hop" if multi_hop else "factoid",
        "question": f"Question number {i}?",
        "prediction": f"answer {i}",
        "answers": [f"gold {i}", f"alias {i}"],
        "exit_reason": "answered",
        "metrics": {"f1": f1, "em": float(f1 >= 0.5), "faithfulness": None if multi_hop else 0.8},
        # a cluster of 10 items at exactly 1.0 s (plus i = 5), the rest spread over 0.6..3.4 s
        "latency_s": 1.0 if i % 3 == 0 else 0.5 + 0.1 * i,
        "model_calls": 3,
        "tokens": 5000 + i,
        "error": None,
    }
    if i == 29:
        row |= {
            "question": f"{SCRIPT} Who?",
            "prediction": "",
            "exit_reason": "error",
            "error": "TimeoutError: model call exceeded 30 s",
            "metrics": {"f1": None, "em": None, "faithfulness": None},
        }
    return row


@pytest.fixture
def rows() -> list[dict[str, Any]]:
    return [_row(i) for i in range(30)]


@pytest.fixture
def summary() -> dict[str, Any]:
    return {
        "run_id": "20260101-rag-hotpot",
        "dataset": {"name": "hotpotqa-dev", "items": 30, "fingerprint": "ab12cd34"},
        "agent": "rag",
        "created": "2026-01-01T12:00:00+00:00",
        "metrics": {"f1": 0.48333, "em": 0.5, "faithfulness": 0.8, "judge_score": None, "avg_citations": 2.25},
        "categories": {
            "factoid": {"n": 18, "f1": 0.51234, "em": 0.55556, "faithfulness": 0.8},
            "multi-hop": {"n": 12, "f1": 0.43999, "em": 0.41667, "faithfulness": None},
        },
        "latency": {"p50": 1.0, "p95": 3.1, "mean": 1.52},
        "cost": {"model_calls": 96, "tokens": 152340, "model_calls_mean": 3.2, "tokens_mean": 5078.0},
        "exit_reasons": {"max_steps": 3, "answered": 26, "error": 1},
        "per_node": {"retrieve": {"calls": 30, "p50": 0.12, "p95": 0.34}, "generate": {"calls": 66, "p50": 0.8}},
        "tool_errors": 2,
        "manifest": {
            "dataset_hash": "sha256:ab12",
            "settings": {"top_k": 5, "hybrid": True},
            "model": "gpt-test",
            "seed": 0,
            "git_commit": None,
        },
    }


class _Page(HTMLParser):
    """Collects tag nesting errors and the attributes of every SVG element by plot."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.plots: dict[str, list[tuple[str, dict[str, str]]]] = {}
        self._plot: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "svg":
            self._plot = found["class"]
            self.plots[self._plot] = []
        elif self._plot is not None:
            self.plots[self._plot].append((tag, found))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()
        if tag == "svg":
            self._plot = None


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def _bars(parser: _Page, plot: str) -> list[dict[str, str]]:
    return [attrs for tag, attrs in parser.plots[f"chart chart-{plot}"] if tag == "rect" and attrs["class"] == "bar"]


def _section(markdown: str, heading: str) -> str:
    return markdown.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


def test_markdown_tables(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    md = render_markdown(summary, rows)
    assert md.startswith("# Eval report: 20260101-rag-hotpot (rag on hotpotqa-dev)\n")
    assert "- Dataset: hotpotqa-dev (30 items, fingerprint ab12cd34)" in md
    metrics = _section(md, "Metrics")
    assert "| f1 | 0.4833 |\n| em | 0.5000 |\n| faithfulness | 0.8000 |" in metrics
    assert f"| judge_score | {DASH} |" in metrics
    assert "| avg_citations | 2.2500 |" in metrics
    assert "- Latency: p50 1.000 s · p95 3.100 s · mean 1.520 s" in md
    assert "- Model calls: 96 (3.2 per item)" in md
    assert "- Tokens: 152,340 (5,078.0 per item)" in md
    assert "- Tool errors: 2" in md
    exits = _section(md, "Exit reasons")
    assert exits.index("| answered | 26 | 86.7% |") < exits.index("| max_steps | 3 | 10.0% |")
    categories = _section(md, "Per category")
    assert "| category | n | f1 | em | faithfulness |" in categories
    assert "| factoid | 18 | 0.5123 | 0.5556 | 0.8000 |" in categories
    assert f"| multi-hop | 12 | 0.4400 | 0.4167 | {DASH} |" in categories
    nodes = _section(md, "Per node")
    assert "| retrieve | 30 | 0.120 s | 0.340 s |" in nodes
    assert f"| generate | 66 | 0.800 s | {DASH} |" in nodes
    manifest = _section(md, "Manifest")
    assert "<details><summary>6 entries</summary>" in manifest
    assert "| settings.top_k | 5 |" in manifest
    assert "| settings.hybrid | true |" in manifest
    assert f"| git_commit | {DASH} |" in manifest


def test_markdown_worst_items_put_errors_first_then_lowest_first_metric(
    summary: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    worst = _section(render_markdown(summary, rows), "Worst items (errors first, then lowest f1)")
    ids = re.findall(r"^\| (q\d\d) \|", worst, flags=re.MULTILINE)
    assert ids == ["q29", "q00", "q13", "q26", "q09", "q22", "q05", "q18", "q01", "q14"]
    assert "| q13 | factoid | 0.0333 | answered | Question number 13? | answer 13 | gold 13; alias 13 |" in worst
    assert "error: TimeoutError: model call exceeded 30 s" in worst
    assert "&lt;script&gt;" in worst
    assert "<script>" not in worst


def test_html_is_well_formed_with_three_plots(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    page = render_html(summary, rows)
    parser = _parse(page)
    assert parser.errors == []
    assert parser.stack == []
    assert page.count("<svg") == 3
    assert list(parser.plots) == ["chart chart-metrics", "chart chart-latency", "chart chart-categories"]
    for elements in parser.plots.values():
        assert elements[0][0] == "title"
    assert "<td>0.4833</td>" in page
    assert f"<td>multi-hop</td><td>12</td><td>0.4400</td><td>0.4167</td><td>{DASH}</td>" in page


def test_html_escapes_run_text(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    summary["agent"] = "rag <b>bold</b>"
    page = render_html(summary, rows)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Who?" in page
    assert "<b>" not in page
    assert "rag &lt;b&gt;bold&lt;/b&gt;" in page


def test_metric_plot_has_a_bar_per_unit_metric(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    bars = _bars(_parse(render_html(summary, rows)), "metrics")
    # judge_score is None and avg_citations is outside [0, 1]: no bars for them
    widths = [float(bar["width"]) for bar in bars]
    assert len(widths) == 3
    assert widths[0] / widths[2] == pytest.approx(0.48333 / 0.8, abs=1e-3)
    assert widths[1] / widths[2] == pytest.approx(0.5 / 0.8, abs=1e-3)


def test_latency_histogram_bars_follow_the_bin_counts(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    bars = _bars(_parse(render_html(summary, rows)), "latency")
    assert len(bars) == 20
    latencies = [row["latency_s"] for row in rows]
    lo, hi = min(latencies), max(latencies)
    expected = [0] * 20
    for value in latencies:
        expected[min(int((value - lo) / ((hi - lo) / 20)), 19)] += 1
    counts = [int(bar["data-count"]) for bar in bars]
    assert counts == expected
    assert sum(counts) == 30
    heights = [float(bar["height"]) for bar in bars]
    tallest = max(range(20), key=heights.__getitem__)
    # the 1.0 s cluster: ten items at i % 3 == 0, plus i = 4 (0.9 s) and i = 5 (1.0 s)
    assert counts[tallest] == max(counts) == 12
    assert float(bars[tallest]["data-lo"]) <= 1.0 < float(bars[tallest]["data-hi"])
    for height, count in zip(heights, counts, strict=True):
        assert height / heights[tallest] == pytest.approx(count / 12, abs=0.01)


def test_latency_histogram_marks_p50_and_p95(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    page = render_html(summary, rows)
    elements = _parse(page).plots["chart chart-latency"]
    marks = {
        attrs["class"]: float(attrs["x1"]) for tag, attrs in elements if tag == "line" and "mark" in attrs["class"]
    }
    assert set(marks) == {"mark mark-p50", "mark mark-p95"}
    assert marks["mark mark-p50"] < marks["mark mark-p95"]
    assert "p50 1.000 s" in page
    assert "p95 3.100 s" in page
    assert "latency (s)" in page


def test_category_plot_groups_the_first_three_metrics(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    parser = _parse(render_html(summary, rows))
    bars = _bars(parser, "categories")
    # 2 categories x 3 metrics, less multi-hop's faithfulness (None)
    assert len(bars) == 5
    swatches = [attrs for tag, attrs in parser.plots["chart chart-categories"] if attrs.get("class") == "swatch"]
    assert len(swatches) == 3
    widths = [float(bar["width"]) for bar in bars]
    assert widths[0] / widths[3] == pytest.approx(0.51234 / 0.43999, abs=1e-3)


def test_empty_run_renders_no_data(summary: dict[str, Any]) -> None:
    for key in ("metrics", "categories", "per_node", "exit_reasons", "manifest", "cost"):
        summary[key] = {}
    summary["latency"] = {"p50": None, "p95": None, "mean": None}
    md = render_markdown(summary, [])
    assert md.count("_no data_") == 6
    assert f"- Latency: p50 {DASH} · p95 {DASH} · mean {DASH}" in md
    assert f"- Model calls: {DASH}" in md
    page = render_html(summary, [])
    assert "<svg" not in page
    for plot in ("metric", "latency", "category"):
        assert f'<p class="no-data">no data for the {plot} plot</p>' in page
    assert _parse(page).errors == []


def test_bare_summary_and_unscored_rows_do_not_crash(rows: list[dict[str, Any]]) -> None:
    md = render_markdown({"run_id": "bare"}, rows)
    assert md.startswith("# Eval report: bare (? on ?)")
    # without summary metrics the rows' first metric (f1) ranks the worst items
    assert "## Worst items (errors first, then lowest f1)" in md
    page = render_html({"run_id": "bare"}, rows)
    assert page.count("<svg") == 1  # the latency histogram; no metric or category means
    assert "no data for the metric plot" in page


def test_write_report_writes_both_files(tmp_path: Path, summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    md_path, html_path = write_report(tmp_path / "run-1", summary, rows)
    assert (md_path, html_path) == (tmp_path / "run-1" / "report.md", tmp_path / "run-1" / "report.html")
    assert md_path.read_text(encoding="utf-8") == render_markdown(summary, rows)
    assert html_path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert html_path.read_text(encoding="utf-8").count("<svg") == 3


@pytest.fixture
def comparison() -> dict[str, Any]:
    return {
        "run_a": "base",
        "run_b": "cand",
        "items": 60,
        "metrics": [
            {
                "name": "f1",
                "a": 0.52,
                "b": 0.47,
                "delta": -0.05,
                "ci_low": -0.081,
                "ci_high": -0.019,
                "significant": True,
            },
            {"name": "em", "a": 0.4, "b": 0.42, "delta": 0.02, "ci_low": -0.01, "ci_high": 0.05, "significant": False},
        ],
        "flipped": [
            {"id": f"q{i:02d}", "question": f"question {i}", "metric": "em", "a": 1.0, "b": 0.0} for i in range(60)
        ],
        "regressions": ["f1"],
        "threshold": 0.02,
        "gate_metric": "f1",
    }


def test_compare_markdown_marks_regressions(comparison: dict[str, Any]) -> None:
    md = render_compare_markdown(comparison)
    assert md.startswith("# Comparison: base vs cand\n")
    assert "| f1 | 0.5200 | 0.4700 | -0.0500 | [-0.0810, -0.0190] | yes | **REGRESSION** |" in md
    assert "| em | 0.4000 | 0.4200 | +0.0200 | [-0.0100, +0.0500] | no |  |" in md
    flipped = _section(md, "Flipped items (60)")
    assert len(re.findall(r"^\| q\d\d \| em \| 1\.0000 \| 0\.0000 \|", flipped, flags=re.MULTILINE)) == 50
    assert "_… and 10 more_" in flipped
    assert "**FAIL**: gate metric f1, threshold 0.0200. Regressions: f1." in md


def test_compare_gate_passes_when_the_gate_metric_holds(comparison: dict[str, Any]) -> None:
    comparison["gate_metric"] = "em"
    comparison["regressions"] = []
    assert "**PASS**: gate metric em, threshold 0.0200. Regressions: none." in render_compare_markdown(comparison)
    comparison |= {"gate_metric": None, "regressions": ["f1"], "flipped": [], "metrics": []}
    md = render_compare_markdown(comparison)
    assert "**FAIL**: every metric gated, threshold 0.0200. Regressions: f1." in md
    assert md.count("_no data_") == 2


def test_html_report_renders_its_plots_in_chromium(
    tmp_path: Path, summary: dict[str, Any], rows: list[dict[str, Any]], browser: Any
) -> None:
    """The page as a browser draws it: three plots with visible bars, tables, a screenshot kept."""
    _, html = write_report(tmp_path, summary, rows)
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(html.resolve().as_uri())
    plots = page.locator("svg")
    assert plots.count() == 3
    for i in range(3):
        box = plots.nth(i).bounding_box()
        assert box is not None
        assert box["width"] > 200
        assert box["height"] > 80
    assert page.locator("svg rect").count() > 10  # bars drawn, not empty frames
    assert page.locator("table").count() >= 3
    assert page.locator("script").count() == 0  # the question's markup stayed text
    page.screenshot(path=str(screenshot_path("eval-report.png")), full_page=True)
    page.close()
    assert not errors
