"""Eval run reports: Markdown, and one self-contained HTML page with inline SVG plots.

The inputs are the plain, JSON-serialisable dicts an eval runner produces: a run ``summary`` and
one row per item. The report only reads them, so a finished run can be re-rendered at any time.
The HTML needs no network: the CSS and the plots (hand-written SVG) are inline, and every piece
of text from the run is escaped. Missing keys and ``None`` values print as an en dash; an empty input
gives a "no data" note instead of a table or a plot.

Metrics are taken to be "higher is better": the worst items are those with the lowest value of
the first metric in ``summary["metrics"]``.
"""

from __future__ import annotations

import html
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.metrics import percentile

__all__ = ["render_compare_markdown", "render_html", "render_markdown", "write_report"]

Summary = Mapping[str, Any]
Rows = Sequence[Mapping[str, Any]]

DASH = "\u2013"  # en dash
WORST_ITEMS = 10
MAX_FLIPPED = 50
HIST_BINS = 20
_CLIP = 160
_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f")
_LEFT, _PLOT_W = 180.0, 360.0  # horizontal bar charts: label column, then bars
_NO_DATA_MD = "_no data_"
_NO_DATA_HTML = '<p class="no-data">no data</p>'


@dataclass(frozen=True)
class _Table:
    headers: list[str]
    rows: list[list[str]]
    """Plain-text cells; each renderer escapes them for its format."""


@dataclass(frozen=True)
class _Section:
    key: str
    """Where a plot attaches in the HTML page (``metrics``, ``latency``, ``categories``)."""
    title: str
    lines: list[str] = field(default_factory=list)
    table: _Table | None = None
    collapsed: bool = False


# -- public API ------------------------------------------------------------------------------


def render_markdown(summary: Summary, rows: Rows) -> str:
    """The run report as Markdown: metrics, latency and cost, breakdowns, worst items, manifest.

    Args:
        summary: The run summary (``run_id``, ``metrics``, ``categories``, ``latency``, ...).
        rows: One dict per item (``id``, ``question``, ``prediction``, ``metrics``, ...).
    """
    title, meta = _header(summary)
    out = [f"# {_md(title)}", "", *(f"- {_md(line)}" for line in meta)]
    for section in _sections(summary, rows):
        out += ["", *_md_section(section)]
    return "\n".join(out) + "\n"


def render_html(summary: Summary, rows: Rows) -> str:
    """The run report as one self-contained HTML page, with three inline SVG plots.

    The plots are the metric means (0 to 1), a histogram of the items' latency with p50 and
    p95 marked, and the per-category means of the first three metrics.
    """
    title, meta = _header(summary)
    plots = {
        "metrics": _metric_chart(summary),
        "latency": _latency_chart(summary, rows),
        "categories": _category_chart(summary, rows),
    }
    body = [f"<h1>{_esc(title)}</h1>", _html_list(meta)]
    body += [_html_section(section, plots.get(section.key, "")) for section in _sections(summary, rows)]
    return _page(title, "\n".join(body))


def write_report(run_dir: Path, summary: Summary, rows: Rows) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``run_dir``; returns their paths."""
    run_dir.mkdir(parents=True, exist_ok=True)
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    md_path.write_text(render_markdown(summary, rows), encoding="utf-8")
    html_path.write_text(render_html(summary, rows), encoding="utf-8")
    return md_path, html_path


def render_compare_markdown(comparison: Mapping[str, Any]) -> str:
    """Two runs compared, as Markdown: metric deltas with 95% CIs, flipped items, gate verdict.

    Args:
        comparison: ``run_a``, ``run_b``, ``metrics`` (``name``, ``a``, ``b``, ``delta``,
            ``ci_low``, ``ci_high``, ``significant``), ``flipped`` (``id``, ``question``,
            ``metric``, ``a``, ``b``), ``regressions`` (metric names), ``threshold`` and
            ``gate_metric`` (or ``None``).
    """
    run_a, run_b = comparison.get("run_a", "?"), comparison.get("run_b", "?")
    regressions = [str(name) for name in comparison.get("regressions") or []]
    flipped = list(comparison.get("flipped") or [])
    out = [f"# Comparison: {_md(run_a)} vs {_md(run_b)}", "", f"- A = {_md(run_a)}, B = {_md(run_b)}"]
    if "items" in comparison:
        out.append(f"- Items compared: {_count(comparison['items'])}")
    out += ["", "## Metrics", "", *_md_table(_delta_table(comparison.get("metrics") or [], regressions))]
    out += ["", f"## Flipped items ({len(flipped)})", "", *_flipped_lines(flipped)]
    out += ["", "## Gate", "", _gate_line(comparison, regressions)]
    return "\n".join(out) + "\n"


# -- content shared by both formats ----------------------------------------------------------


def _header(summary: Summary) -> tuple[str, list[str]]:
    dataset = _dict(summary, "dataset")
    name, agent = dataset.get("name", "?"), summary.get("agent", "?")
    title = f"Eval report: {summary.get('run_id', '?')} ({agent} on {name})"
    meta = [
        f"Agent: {agent}",
        f"Dataset: {name} ({_count(dataset.get('items'))} items, fingerprint {dataset.get('fingerprint', DASH)})",
        f"Created: {summary.get('created', DASH)}",
    ]
    return title, meta


def _sections(summary: Summary, rows: Rows) -> list[_Section]:
    return [
        _metrics_section(summary),
        _cost_section(summary),
        _exit_section(summary),
        _category_section(summary, rows),
        _node_section(summary),
        _worst_section(rows, _metric_names(summary, rows)),
        _manifest_section(summary),
    ]


def _metrics_section(summary: Summary) -> _Section:
    cells = [[str(name), _f4(value)] for name, value in _dict(summary, "metrics").items()]
    return _Section("metrics", "Metrics", table=_Table(["metric", "value"], cells))


def _cost_section(summary: Summary) -> _Section:
    latency, cost = _dict(summary, "latency"), _dict(summary, "cost")
    spread = " · ".join(f"{key} {_seconds(latency.get(key))}" for key in ("p50", "p95", "mean"))
    lines = [
        f"Latency: {spread}",
        f"Model calls: {_count(cost.get('model_calls'))}{_per_item(cost.get('model_calls_mean'))}",
        f"Tokens: {_count(cost.get('tokens'))}{_per_item(cost.get('tokens_mean'))}",
        f"Tool errors: {_count(summary.get('tool_errors'))}",
    ]
    return _Section("latency", "Latency and cost", lines=lines)


def _exit_section(summary: Summary) -> _Section:
    reasons = _dict(summary, "exit_reasons")
    total = sum(_number(count) or 0.0 for count in reasons.values())
    ordered = sorted(reasons.items(), key=lambda item: -(_number(item[1]) or 0.0))
    cells = [[str(reason), _count(count), _percent(count, total)] for reason, count in ordered]
    return _Section("exits", "Exit reasons", table=_Table(["reason", "count", "share"], cells))


def _category_section(summary: Summary, rows: Rows) -> _Section:
    columns = _category_columns(summary, rows)
    cells = [
        [str(category), _count(stats.get("n")), *(_f4(stats.get(name)) for name in columns)]
        for category, stats in _dict(summary, "categories").items()
    ]
    return _Section("categories", "Per category", table=_Table(["category", "n", *columns], cells))


def _node_section(summary: Summary) -> _Section:
    cells = [
        [str(node), _count(stats.get("calls")), _seconds(stats.get("p50")), _seconds(stats.get("p95"))]
        for node, stats in _dict(summary, "per_node").items()
    ]
    return _Section("nodes", "Per node", table=_Table(["node", "calls", "p50", "p95"], cells))


def _worst_section(rows: Rows, names: list[str]) -> _Section:
    metric = names[0] if names else None
    title = f"Worst items (errors first, then lowest {metric})" if metric else "Worst items (errors)"
    headers = ["id", "category", metric or "metric", "exit", "question", "prediction", "gold"]
    cells = [_worst_cells(row, metric) for row in _worst_rows(rows, metric)]
    return _Section("worst", title, table=_Table(headers, cells))


def _worst_rows(rows: Rows, metric: str | None) -> list[Mapping[str, Any]]:
    # Items without an error or a score say nothing about quality, so they are left out.
    scored = [row for row in rows if row.get("error") or _number(_row_metric(row, metric)) is not None]

    def badness(row: Mapping[str, Any]) -> tuple[bool, float]:
        value = _number(_row_metric(row, metric))
        return not row.get("error"), math.inf if value is None else value

    return sorted(scored, key=badness)[:WORST_ITEMS]


def _worst_cells(row: Mapping[str, Any], metric: str | None) -> list[str]:
    error = row.get("error")
    prediction = f"error: {error}" if error else row.get("prediction")
    gold = "; ".join(str(answer) for answer in row.get("answers") or [])
    return [
        str(row.get("id", "?")),
        str(row.get("category") or DASH),
        _f4(_row_metric(row, metric)),
        str(row.get("exit_reason") or DASH),
        _clip(row.get("question")),
        _clip(prediction),
        _clip(gold),
    ]


def _manifest_section(summary: Summary) -> _Section:
    cells = [[key, value] for key, value in _flatten(_dict(summary, "manifest"))]
    return _Section("manifest", "Manifest", table=_Table(["key", "value"], cells), collapsed=True)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out += _flatten(value, f"{name}.")
        else:
            out.append((name, _plain(value)))
    return out


def _plain(value: object) -> str:
    if value is None:
        return DASH
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _metric_names(summary: Summary, rows: Rows) -> list[str]:
    names = [str(name) for name in _dict(summary, "metrics")]
    return names or _union(*((str(name) for name in _dict(row, "metrics")) for row in rows))


def _category_columns(summary: Summary, rows: Rows) -> list[str]:
    categories = _dict(summary, "categories").values()
    keys = [key for key in _union(*(map(str, stats) for stats in categories)) if key != "n"]
    names = _metric_names(summary, rows)
    return [name for name in names if name in keys] + [key for key in keys if key not in names]


def _row_metric(row: Mapping[str, Any], metric: str | None) -> Any:
    return _dict(row, "metrics").get(metric) if metric else None


# -- comparison ------------------------------------------------------------------------------


def _delta_table(metrics: Iterable[Mapping[str, Any]], regressions: list[str]) -> _Table:
    headers = ["metric", "A", "B", "Δ (B - A)", "95% CI", "significant", "regression"]
    cells = [
        [
            str(m.get("name", "?")),
            _f4(m.get("a")),
            _f4(m.get("b")),
            _signed(m.get("delta")),
            f"[{_signed(m.get('ci_low'))}, {_signed(m.get('ci_high'))}]",
            "yes" if m.get("significant") else "no",
            "**REGRESSION**" if str(m.get("name")) in regressions else "",
        ]
        for m in metrics
    ]
    return _Table(headers, cells)


def _flipped_lines(flipped: list[Mapping[str, Any]]) -> list[str]:
    cells = [
        [str(f.get("id", "?")), str(f.get("metric", "?")), _f4(f.get("a")), _f4(f.get("b")), _clip(f.get("question"))]
        for f in flipped[:MAX_FLIPPED]
    ]
    lines = _md_table(_Table(["id", "metric", "A", "B", "question"], cells))
    if len(flipped) > MAX_FLIPPED:
        lines += ["", f"_… and {len(flipped) - MAX_FLIPPED} more_"]
    return lines


def _gate_line(comparison: Mapping[str, Any], regressions: list[str]) -> str:
    # Without a gate metric every metric is gated, as the comparison's regressions already say.
    gate = comparison.get("gate_metric")
    failed = str(gate) in regressions if gate else bool(regressions)
    scope = f"gate metric {_md(gate)}" if gate else "every metric gated"
    listed = _md(", ".join(regressions) or "none")
    threshold = _f4(comparison.get("threshold"))
    return f"**{'FAIL' if failed else 'PASS'}**: {scope}, threshold {threshold}. Regressions: {listed}."


# -- Markdown --------------------------------------------------------------------------------


def _md_section(section: _Section) -> list[str]:
    out = [f"## {_md(section.title)}", ""]
    out += [f"- {_md(line)}" for line in section.lines]
    if section.table is None:
        return out
    table = _md_table(section.table)
    if section.collapsed:
        table = [f"<details><summary>{len(section.table.rows)} entries</summary>", "", *table, "", "</details>"]
    return out + table


def _md_table(table: _Table) -> list[str]:
    if not table.rows:
        return [_NO_DATA_MD]
    header = [_md_row(table.headers), "|" + "---|" * len(table.headers)]
    return header + [_md_row(cells) for cells in table.rows]


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(_md(cell) for cell in cells) + " |"


def _md(text: object) -> str:
    # Markdown passes inline HTML through, so run text is escaped here as well.
    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")


# -- HTML ------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1100px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td { max-width: 28rem; overflow-wrap: break-word; }
.no-data { color: #888; font-style: italic; }
.wide { overflow-x: auto; }
svg.chart { display: block; margin: .75rem 0; max-width: 100%; height: auto; }
svg.chart text { font-size: 11px; fill: #333; }
"""


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _html_section(section: _Section, plot: str) -> str:
    parts = [_html_list(section.lines)] if section.lines else []
    if section.table is not None:
        parts.append(_html_table(section.table))
    content = "\n".join(parts)
    if section.collapsed:
        content = f"<details><summary>show</summary>\n{content}\n</details>"
    return f'<section id="{_esc(section.key)}">\n<h2>{_esc(section.title)}</h2>\n{content}\n{plot}\n</section>'


def _html_list(lines: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{_esc(line)}</li>" for line in lines) + "</ul>"


def _html_table(table: _Table) -> str:
    if not table.rows:
        return _NO_DATA_HTML
    head = "".join(f"<th>{_esc(cell)}</th>" for cell in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(cell)}</td>" for cell in cells) + "</tr>\n" for cells in table.rows)
    # Wide tables (a column per metric) scroll sideways instead of running off the page.
    return f'<div class="wide"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table></div>'


def _esc(text: object) -> str:
    return html.escape(str(text))


# -- SVG plots -------------------------------------------------------------------------------


def _metric_chart(summary: Summary) -> str:
    bars = [
        (str(name), value)
        for name, raw in _dict(summary, "metrics").items()
        if (value := _number(raw)) is not None and 0.0 <= value <= 1.0
    ]
    if not bars:
        return _no_plot("metric")
    top, row_h = 10.0, 24.0
    bottom = top + row_h * len(bars)
    body = _x_axis(0.0, 1.0, _LEFT, _PLOT_W, top, bottom)
    for i, (name, value) in enumerate(bars):
        y = top + i * row_h
        body.append(_label(_LEFT - 6, y + row_h / 2 + 4, _clip(name, 28), "end"))
        body += _hbar(y + 4, row_h - 8, value, _PALETTE[0], f"{name}: {value:.4f}", f"{value:.4f}")
    return _svg("metrics", "Metric means (0 to 1)", _LEFT + _PLOT_W + 70, bottom + 30, body)


def _category_chart(summary: Summary, rows: Rows) -> str:
    categories, columns = _dict(summary, "categories"), _category_columns(summary, rows)
    values = {
        (str(category), name): value
        for category, stats in categories.items()
        for name in columns
        if (value := _number(stats.get(name))) is not None
    }
    measured = [name for name in columns if any(key[1] == name for key in values)]
    # Metrics that are zero in every category (EM of extractive answers, say) would draw no bars.
    names = ([n for n in measured if any(values.get((str(c), n)) for c in categories)] or measured)[:3]
    if not names:
        return _no_plot("category")
    vmax = max(1.0, *values.values())
    top, bar_h = 30.0, 12.0
    group_h = bar_h * len(names) + 12
    bottom = top + group_h * len(categories)
    body = _legend(names) + _x_axis(0.0, vmax, _LEFT, _PLOT_W, top, bottom)
    for i, category in enumerate(map(str, categories)):
        y = top + i * group_h + 6
        body.append(_label(_LEFT - 6, y + bar_h * len(names) / 2 + 4, _clip(category, 28), "end"))
        for j, name in enumerate(names):
            value = values.get((category, name))
            if value is not None:
                tip = f"{category} · {name}: {value:.4f}"
                body += _hbar(y + j * bar_h, bar_h - 2, value / vmax, _PALETTE[j], tip, f"{value:.2f}")
    title = f"Per-category means: {', '.join(names)}"
    return _svg("categories", title, _LEFT + _PLOT_W + 70, bottom + 30, body)


def _latency_chart(summary: Summary, rows: Rows) -> str:
    values = [value for row in rows if (value := _number(row.get("latency_s"))) is not None]
    if not values:
        return _no_plot("latency")
    marks = _latency_marks(summary, values)
    lo, hi = _domain([*values, *marks.values()])
    counts = _histogram(values, lo, hi)
    left, width, top, height = 56.0, 520.0, 36.0, 180.0
    bottom = top + height
    body = _x_axis(lo, hi, left, width, top, bottom)
    body += _histogram_bars(counts, lo, hi, left, width, bottom, height)
    body += [
        _line(left, top, left, bottom, "axis"),
        _label(left - 6, bottom, "0", "end"),
        _label(left - 6, top + 8, str(max(counts)), "end"),
        _label(left + width / 2, bottom + 32, "latency (s)", "middle"),
        _label(14, top + height / 2, "items", "middle", transform=f"rotate(-90 14 {top + height / 2:.1f})"),
    ]
    for i, (name, value) in enumerate(marks.items()):
        x = left + width * (value - lo) / (hi - lo)
        anchor = "end" if x > left + width / 2 else "start"  # keep the label inside the plot
        body += [
            _line(x, top, x, bottom, f"mark mark-{name}"),
            _label(x, top - 6 - 12 * i, f"{name} {value:.3f} s", anchor),
        ]
    return _svg("latency", f"Latency per item ({len(values)} items)", left + width + 50, bottom + 42, body)


def _latency_marks(summary: Summary, values: list[float]) -> dict[str, float]:
    latency = _dict(summary, "latency")
    marks: dict[str, float] = {}
    for name, q in (("p50", 50.0), ("p95", 95.0)):
        given = _number(latency.get(name))
        marks[name] = percentile(values, q) if given is None else given
    return marks


def _domain(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:  # one distinct value: give its bar some room
        pad = max(abs(lo) * 0.1, 0.5)
        return lo - pad, hi + pad
    return lo, hi


def _histogram(values: list[float], lo: float, hi: float, bins: int = HIST_BINS) -> list[int]:
    counts = [0] * bins
    width = (hi - lo) / bins
    for value in values:
        counts[min(int((value - lo) / width), bins - 1)] += 1
    return counts


def _histogram_bars(
    counts: list[int], lo: float, hi: float, left: float, width: float, bottom: float, height: float
) -> list[str]:
    step, span, peak = width / len(counts), (hi - lo) / len(counts), max(counts)
    bars = []
    for i, count in enumerate(counts):
        bar_h = height * count / peak
        start, end = lo + i * span, lo + (i + 1) * span
        tip = f"{start:.3f} to {end:.3f} s: {count} item{'' if count == 1 else 's'}"
        bars.append(
            _el(
                "rect",
                f"<title>{_esc(tip)}</title>",
                class_="bar",
                x=left + i * step + 1,
                y=bottom - bar_h,
                width=step - 2,
                height=bar_h,
                fill=_PALETTE[0],
                data_count=count,
                data_lo=f"{start:.6g}",
                data_hi=f"{end:.6g}",
            )
        )
    return bars


def _hbar(y: float, height: float, fraction: float, color: str, tip: str, value_text: str) -> list[str]:
    width = _PLOT_W * fraction
    rect = _el(
        "rect", f"<title>{_esc(tip)}</title>", class_="bar", x=_LEFT, y=y, width=width, height=height, fill=color
    )
    return [rect, _label(_LEFT + width + 4, y + height / 2 + 4, value_text)]


def _x_axis(lo: float, hi: float, left: float, width: float, top: float, bottom: float) -> list[str]:
    parts = [_line(left, bottom, left + width, bottom, "axis")]
    for k in range(5):
        x = left + width * k / 4
        parts += [_line(x, top, x, bottom, "grid"), _label(x, bottom + 14, f"{lo + (hi - lo) * k / 4:.3g}", "middle")]
    return parts


def _legend(names: list[str]) -> list[str]:
    parts = []
    for j, name in enumerate(names):
        x = _LEFT + 130 * j
        parts += [
            _el("rect", class_="swatch", x=x, y=8.0, width=10, height=10, fill=_PALETTE[j]),
            _label(x + 14, 17.0, _clip(name, 18)),
        ]
    return parts


def _line(x1: float, y1: float, x2: float, y2: float, kind: str) -> str:
    styles = {"axis": ("#555", ""), "grid": ("#e3e3e3", "")}
    stroke, dash = styles.get(kind, ("#c0392b", "4 3"))
    return _el("line", class_=kind, x1=x1, y1=y1, x2=x2, y2=y2, stroke=stroke, stroke_dasharray=dash or "none")


def _label(x: float, y: float, text: str, anchor: str = "start", transform: str = "") -> str:
    extra = {"transform": transform} if transform else {}
    return _el("text", _esc(text), x=x, y=y, text_anchor=anchor, **extra)


def _svg(kind: str, title: str, width: float, height: float, body: list[str]) -> str:
    return _el(
        "svg",
        f"<title>{_esc(title)}</title>" + "".join(body),
        class_=f"chart chart-{kind}",
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 {width:.0f} {height:.0f}",
        width=f"{width:.0f}",
        height=f"{height:.0f}",
        role="img",
    )


def _el(tag: str, content: str = "", /, **attrs: object) -> str:
    """An SVG element; ``content`` is markup, attribute names map ``class_`` and ``a_b`` to ``class``, ``a-b``."""
    rendered = " ".join(
        f'{name.rstrip("_").replace("_", "-")}="{f"{value:.1f}" if isinstance(value, float) else _esc(value)}"'
        for name, value in attrs.items()
    )
    return f"<{tag} {rendered}>{content}</{tag}>" if content else f"<{tag} {rendered}/>"


def _no_plot(what: str) -> str:
    return f'<p class="no-data">no data for the {what} plot</p>'


# -- formatting ------------------------------------------------------------------------------


def _dict(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _union(*groups: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(itertools.chain(*groups)))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _f4(value: object) -> str:
    number = _number(value)
    return DASH if number is None else f"{number:.4f}"


def _signed(value: object) -> str:
    number = _number(value)
    return DASH if number is None else f"{number:+.4f}"


def _seconds(value: object) -> str:
    number = _number(value)
    return DASH if number is None else f"{number:.3f} s"


def _count(value: object) -> str:
    number = _number(value)
    if number is None:
        return DASH
    return f"{int(number):,}" if number.is_integer() else f"{number:,.2f}"


def _per_item(value: object) -> str:
    number = _number(value)
    return "" if number is None else f" ({number:,.1f} per item)"


def _percent(value: object, total: float) -> str:
    number = _number(value)
    return DASH if number is None or total <= 0 else f"{100 * number / total:.1f}%"


def _clip(value: object, limit: int = _CLIP) -> str:
    text = " ".join(str(value if value is not None else "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
