"""What the recursive (RLM) agent does to a long context: ``split``, ``grep`` and ``aggregate``.

Plain Python on strings, so it works the same offline and with a model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import regex

from tools.context._texts import DocumentSpan

__all__ = [
    "AGGREGATE_OPS",
    "SPLIT_STRATEGIES",
    "Aggregate",
    "AggregateOp",
    "GrepMatch",
    "aggregate",
    "grep",
    "grep_items",
    "split_text",
]

SplitStrategy = Literal["paragraphs", "lines", "chars", "documents"]
SPLIT_STRATEGIES: tuple[str, ...] = ("paragraphs", "lines", "chars", "documents")
AggregateOp = Literal["count", "distinct", "set", "join", "argmax", "most", "least", "sum"]
AGGREGATE_OPS: tuple[str, ...] = ("count", "distinct", "set", "join", "argmax", "most", "least", "sum")
GrepUnit = Literal["match", "line", "sentence"]
GREP_BUFFER_CAP = 10_000
"""Most matches :func:`grep_items` puts into a buffer."""


# -- split ------------------------------------------------------------------------------------

_SEPARATORS: dict[str, tuple[str, ...]] = {
    "paragraphs": ("\n\n", "\n", ". ", " "),
    "lines": ("\n", " "),
    "chars": (" ",),
}


def split_text(
    text: str,
    strategy: str = "paragraphs",
    size: int = 20_000,
    *,
    documents: Sequence[DocumentSpan] = (),
) -> list[tuple[int, int]]:
    """Cut ``text`` into spans of at most ``size`` characters, covering it all, in order.

    ``paragraphs`` / ``lines`` end a span at the last paragraph break / line break in its second
    half (falling back to a sentence end, then a space); ``chars`` at the last space;
    ``documents`` gives one span per document, each cut further if it is longer than ``size``.

    Raises:
        ValueError: Unknown strategy or a size below 1.
    """
    if strategy not in SPLIT_STRATEGIES:
        msg = f"unknown split strategy {strategy!r}; use one of {', '.join(SPLIT_STRATEGIES)}"
        raise ValueError(msg)
    if size < 1:
        msg = f"split size must be at least 1 character, got {size}"
        raise ValueError(msg)
    if strategy == "documents":
        spans = [(d.start, d.end) for d in documents] or [(0, len(text))]
        return [piece for start, end in spans for piece in _cut(text, start, end, size, _SEPARATORS["paragraphs"])]
    return _cut(text, 0, len(text), size, _SEPARATORS[strategy])


def _cut(text: str, start: int, end: int, size: int, separators: tuple[str, ...]) -> list[tuple[int, int]]:
    spans = []
    while start < end:
        stop = min(start + size, end)
        if stop < end:
            for sep in separators:
                at = text.rfind(sep, start + size // 2, stop)
                if at > start:
                    stop = at + len(sep)
                    break
        spans.append((start, stop))
        start = stop
    return spans


# -- grep -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrepMatch:
    start: int
    end: int
    match: str
    snippet: str
    """The match with ``context`` characters around it, whitespace collapsed."""


def _compile(pattern: str, ignore_case: bool) -> regex.Pattern[str]:
    try:
        return regex.compile(pattern, regex.IGNORECASE if ignore_case else 0)
    except regex.error as exc:
        msg = f"invalid regular expression {pattern!r}: {exc}; escape special characters like ( [ ? with \\"
        raise ValueError(msg) from exc


def grep(
    text: str,
    pattern: str,
    *,
    k: int = 20,
    context: int = 80,
    timeout_s: float = 2.0,
    ignore_case: bool = True,
) -> tuple[list[GrepMatch], int, bool]:
    """Find ``pattern`` (a regular expression) in ``text``.

    Returns the first ``k`` matches, how many matches there are (counting stops at 10,000), and
    whether the search ran out of time (a pathological pattern cannot hang the run).

    Raises:
        ValueError: The pattern is not a valid regular expression.
    """
    compiled = _compile(pattern, ignore_case)
    matches: list[GrepMatch] = []
    total = 0
    timed_out = False
    try:
        for m in compiled.finditer(text, timeout=timeout_s):
            total += 1
            if len(matches) < k:
                left, right = max(0, m.start() - context), min(len(text), m.end() + context)
                matches.append(GrepMatch(m.start(), m.end(), m.group(0)[:200], " ".join(text[left:right].split())))
            if total >= 10_000:
                break
    except TimeoutError:
        timed_out = True
    return matches, total, timed_out


def _unit_span(text: str, start: int, end: int, unit: str) -> tuple[int, int]:
    """The line or sentence around ``text[start:end]`` (at most 500 characters each side)."""
    if unit == "match":
        return start, end
    left_limit, right_limit = max(0, start - 500), min(len(text), end + 500)
    left = text.rfind("\n", left_limit, start) + 1 or left_limit
    right = text.find("\n", end, right_limit)
    right = right_limit if right < 0 else right
    if unit == "sentence":
        ends = [m.end() for m in _SENTENCE_END.finditer(text, left, start)]
        left = ends[-1] if ends else left
        stop = _SENTENCE_END.search(text, end, right)
        right = stop.start() + 1 if stop else right
    return left, right


_SENTENCE_END = re.compile(r"[.!?](?=\s)")


def grep_items(
    text: str,
    pattern: str,
    *,
    unit: str = "match",
    ignore_case: bool = True,
    limit: int = GREP_BUFFER_CAP,
    timeout_s: float = 2.0,
) -> tuple[list[dict[str, Any]], bool]:
    """Every match of ``pattern`` (up to ``limit``) as a buffer item for :func:`aggregate`.

    Each item is ``{chunk: "@offset", start, result}`` where ``result`` is, by ``unit``, the match
    (its group named ``value``, else its first group, when the pattern has groups), or the line or
    sentence it falls in, whitespace collapsed. Returns the items and whether the search ran out
    of time.

    Raises:
        ValueError: The pattern is not a valid regular expression, or ``unit`` is unknown.
    """
    if unit not in ("match", "line", "sentence"):
        msg = f"unknown grep unit {unit!r}; use match, line or sentence"
        raise ValueError(msg)
    compiled = _compile(pattern, ignore_case)
    items: list[dict[str, Any]] = []
    try:
        for m in compiled.finditer(text, timeout=timeout_s):
            if unit == "match":
                group = "value" if "value" in compiled.groupindex else (1 if compiled.groups else 0)
                value = m.group(group) or ""
            else:
                left, right = _unit_span(text, m.start(), m.end(), unit)
                value = text[left:right]
            items.append({"chunk": f"@{m.start()}", "start": m.start(), "result": " ".join(value.split())})
            if len(items) >= limit:
                break
    except TimeoutError:
        return items, True
    return items, False


# -- aggregate --------------------------------------------------------------------------------

_EMPTY_RESULTS = frozenset({"", "none", "n/a", "not found", "nothing", "no answer", "null"})


def _is_empty(result: Any) -> bool:
    return result is None or str(result).strip().strip(".").lower() in _EMPTY_RESULTS


def _number(value: Any) -> float | None:
    found = re.search(r"-?\d+(?:\.\d+)?", str(value).replace(",", ""))
    return float(found.group(0)) if found else None


def _key(value: Any) -> str:
    """How two results count as the same value: case, spacing, quotes and end punctuation aside."""
    return " ".join(str(value).split()).strip(" '\"`.,;:").lower()


@dataclass(slots=True)
class Aggregate:
    """The outcome of :func:`aggregate`: a value for the model and, for ``argmax``, the winner."""

    op: str
    value: Any
    items: int
    best: dict[str, Any] | None = field(default=None)


def aggregate(items: Sequence[dict[str, Any]], op: str) -> Aggregate:
    """Combine a buffer's results without a model.

    - ``count``: results that found something (not empty, not "none"/"not found").
    - ``distinct``: how many different results there are (case, spacing and quotes aside).
    - ``set``: the distinct results, in first-seen order.
    - ``join``: the results that found something, one per line, with their chunk ids.
    - ``argmax``: the result with the highest ``score`` (or, without scores, the largest number
      in the result text).
    - ``most`` / ``least``: the most / least frequent result and how often it occurs
      (``{"value", "count", "ties"}``; ties go to the first seen).
    - ``sum``: the sum of the first number in each result (results without one are left out and
      counted in ``skipped``).

    Raises:
        ValueError: Unknown operation.
    """
    if op not in AGGREGATE_OPS:
        msg = f"unknown aggregate op {op!r}; use one of {', '.join(AGGREGATE_OPS)}"
        raise ValueError(msg)
    found = [item for item in items if not _is_empty(item.get("result"))]
    if op == "count":
        return Aggregate(op, len(found), len(items))
    if op in ("set", "distinct", "most", "least"):
        seen: dict[str, str] = {}
        counts: dict[str, int] = {}
        for item in found:
            value = " ".join(str(item["result"]).split()).strip(" '\"`.,;:")
            seen.setdefault(_key(value), value)
            counts[_key(value)] = counts.get(_key(value), 0) + 1
        if op == "set":
            return Aggregate(op, list(seen.values()), len(items))
        if op == "distinct":
            return Aggregate(op, len(seen), len(items))
        if not counts:
            return Aggregate(op, None, len(items))
        pick = max if op == "most" else min
        target = pick(counts.values())
        winners = [k for k, c in counts.items() if c == target]
        return Aggregate(
            op, {"value": seen[winners[0]], "count": target, "ties": [seen[k] for k in winners[1:]]}, len(items)
        )
    if op == "sum":
        numbers = [n for n in (_number(i["result"]) for i in found) if n is not None]
        total = sum(numbers)
        summed: int | float = int(total) if float(total).is_integer() else round(total, 6)
        return Aggregate(op, {"sum": summed, "numbers": len(numbers), "skipped": len(found) - len(numbers)}, len(items))
    if op == "join":
        return Aggregate(op, "\n".join(f"[{i.get('chunk', '?')}] {i['result']}" for i in found), len(items))
    if not found:
        return Aggregate(op, None, len(items))

    def key(item: dict[str, Any]) -> float:
        score = item.get("score")
        if isinstance(score, int | float):
            return float(score)
        number = _number(item["result"])
        return number if number is not None else float("-inf")

    best = max(found, key=key)  # max keeps the first of equals: reading order breaks ties
    return Aggregate(op, best["result"], len(items), best)
