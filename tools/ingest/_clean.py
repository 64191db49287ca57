"""Cleaning what documents carry before it is stored, hashed into ids, or printed.

Documents come from anywhere: a JSONL row may hold a lone surrogate (which no UTF-8 encoder
accepts, so ``uuid5`` of it raises), a text file may hold ANSI/OSC escape sequences (which clear a
terminal or retitle it when ``arag search`` prints them), a 5,000-digit integer does not fit a
store's payload. :func:`clean_text` and :func:`clean_metadata` make them safe once, at ingest;
:func:`terminal_safe` is applied again to whatever the CLI prints, for text stored before.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["clean_metadata", "clean_text", "path_text", "terminal_safe"]

# ESC-introduced sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC
# (ESC P/X/^/_ ... ST), and two-character escapes (ESC plus one byte). Their 8-bit C1 forms too.
_ESCAPES = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?                 # CSI
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)  # OSC, DCS, SOS, PM, APC
    | \x1b[ -/]*[0-~]?                                  # other escapes
    """,
    re.VERBOSE | re.DOTALL,
)
# C0 controls but tab and newline, DEL, C1 controls; lone surrogates.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
# Bidirectional overrides and isolates: they reorder what a terminal shows ("Trojan Source").
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")

_MAX_DEPTH = 32
_INT_LIMIT = 2**63


def clean_text(text: str) -> str:
    """``text`` without terminal escape sequences, control characters (tab and newline stay;
    ``\\r\\n`` and ``\\r`` become ``\\n``) and lone surrogates (each becomes U+FFFD)."""
    if text.isascii() and text.isprintable():
        return text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _ESCAPES.sub("", text)
    text = _CONTROLS.sub("", text)
    return _SURROGATES.sub("\ufffd", text)


def path_text(path: object) -> str:
    """A file path as valid text: a name that is not valid UTF-8 (Python holds its bytes as lone
    surrogates) gets ``\\xff``-style escapes, so it can be hashed, stored and printed, and the
    same file always gives the same text."""
    text = str(path)
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def terminal_safe(text: str) -> str:
    """``text`` safe to print on a terminal: :func:`clean_text`, and bidirectional overrides removed."""
    return _BIDI.sub("", clean_text(text))


def clean_metadata(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of a metadata value: strings cleaned, non-finite floats and integers
    beyond 64 bits made strings, keys made strings, and anything nested deeper than 32 levels
    replaced by ``"[nested too deep]"`` (stores reject deep payloads; nothing useful is that deep)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -_INT_LIMIT < value < _INT_LIMIT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= _MAX_DEPTH:
        return "[nested too deep]"
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_metadata(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_metadata(v, depth + 1) for v in value]
    return clean_text(str(value))
