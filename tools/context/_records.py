"""Repeated records in a long text: the pattern that a few dozen log lines or record sentences
share, found from the lines that mention a word.

A question like "how many distinct vessels are recorded?" is about lines such as
``HARBOUR LOG | vessel: Aurora | berth 4`` or ``Late that night the vessel Aurora docked.``
scattered through a text that also uses the word in passing. :func:`record_pattern` looks at
every line that mentions the word, reads a value out of each by a few shapes (``vessel: V``,
``vessel=V``, ``vessel V`` with V a name, a quoted string or a code, and for sums ``12 crates`` or
``crates: 12``), and keeps the shape and the words before the value that most lines share. The
result is a regular expression with a ``value`` group: grep it over the text and aggregate the
values. Fewer than ``min_records`` lines of one shape is not a record pattern.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["RecordPattern", "record_pattern"]

_NAME = r"[A-Z][\w'&.-]*(?:\s+(?:of\s+|de\s+|the\s+)?[A-Z][\w'&.-]*){0,3}"
_QUOTED = r"'[^'\n]{1,60}'|\"[^\"\n]{1,60}\"|\u201c[^\u201d\n]{1,60}\u201d|\u2018[^\u2019\n]{1,60}\u2019"
_CODE = r"#?[A-Z0-9][A-Z0-9/-]*\d[A-Z0-9/-]*\b"
_NUMBER = r"\d[\d,]*(?:\.\d+)?"
_KEYED_VALUE = r"[^|;,\n()\[\]]{1,60}?(?=\s*(?:[|;,\n()\[\]]|\.(?:\s|$)|$|\s[-\u2013\u2014]\s))"
_SHAPES: dict[str, str] = {
    # shape: the value's regex relative to the word (TARGET); named groups are not used here
    "keyed": r"TARGET(?:[ \t]+[a-z]+){0,2}[ \t]*[:=][ \t]*(?P<value>" + _KEYED_VALUE + ")",
    "named": r"TARGET[ \t]+(?-i:(?P<value>" + _QUOTED + "|" + _CODE + "|" + _NAME + "))",
    "count_before": r"(?P<value>" + _NUMBER + r")[ \t]+(?:[a-z-]+[ \t]+)?TARGET",
    "count_keyed": r"TARGET(?:[ \t]+[a-z]+){0,2}[ \t]*[:=][ \t]*(?P<value>" + _NUMBER + ")",
}
_NUMERIC_SHAPES = ("count_before", "count_keyed")
_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True, slots=True)
class RecordPattern:
    """How the records that mention a word look, and how to read their values."""

    regex: str
    """A regular expression with a ``value`` group; grep it case-insensitively (names inside it
    keep their own case rule)."""
    shape: str
    """``keyed`` (``word: value``), ``named`` (``word Value``), ``count_before`` (``12 words``)
    or ``count_keyed`` (``word: 12``)."""
    frame: str
    """What the first record has before its value, for people: ``"HARBOUR LOG | vessel: <value>"``."""
    lines: int
    """Lines of the sample that fit the pattern."""
    values: tuple[str, ...]
    """The values read from those lines, in order."""


def _shape_regex(shape: str, target: str) -> str:
    return _SHAPES[shape].replace("TARGET", target)


def _frame(line: str, start: int) -> tuple[str, ...]:
    """The token before a record's word (or its count), normalised: a capitalised word or a
    number is a slot."""
    out = []
    for token in _TOKEN.findall(line[:start])[-1:]:
        if token[0].isdigit():
            out.append("0")
        elif token[0].isupper() and not token.isupper():
            out.append("#")
        else:
            out.append(token.lower())
    return tuple(out)


def record_pattern(
    lines: Sequence[str], target: str, *, numeric: bool = False, min_records: int = 3
) -> RecordPattern | None:
    """The record pattern most of ``lines`` share around ``target`` (a regular expression for the
    word, e.g. from :func:`tools.questions.plural_pattern`), or None when no shape fits at least
    ``min_records`` lines.

    ``numeric`` looks for counts (``12 crates``, ``crates: 12``) instead of names.
    """
    shapes = _NUMERIC_SHAPES if numeric else ("keyed", "named")
    compiled = {s: re.compile(_shape_regex(s, target), re.IGNORECASE) for s in shapes}
    groups: Counter[tuple[str, tuple[str, ...]]] = Counter()
    found: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    shown: dict[tuple[str, tuple[str, ...]], str] = {}
    for line in lines:
        for shape, pattern in compiled.items():
            match = pattern.search(line)
            if match and match.group("value").strip():
                key = (shape, _frame(line, match.start()))
                groups[key] += 1
                found.setdefault(key, []).append(match.group("value").strip())
                shown.setdefault(
                    key, line[max(0, match.start("value") - 40) : match.start("value")].lstrip() + "<value>"
                )
                break
    if not groups:
        return None
    (shape, frame), count = groups.most_common(1)[0]
    if count < min_records:
        return None
    lead = ""  # the token right before the record's word, when every record has the same one
    if frame and frame[-1] not in ("#", "0"):
        last = frame[-1]
        lead = rf"\b{re.escape(last)}\W+" if re.fullmatch(r"\w+", last) else re.escape(last) + r"[ \t]*"
    regex = lead + _shape_regex(shape, target)
    return RecordPattern(regex, shape, shown[(shape, frame)], count, tuple(found[(shape, frame)]))
