"""The texts of long contexts, kept out of the prompt behind handles.

The text of a context never travels through graph state or checkpoints: state holds its handle
(a short string) and its metadata; the text lives in a :class:`ContextStore` in the run's
context, and a 10M-character context costs one copy in memory.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tools.ingest.loaders import LoadError, find_files, load_file

__all__ = ["ContextInfo", "ContextStore", "DocumentSpan", "load_context"]


@dataclass(frozen=True, slots=True)
class DocumentSpan:
    """Where one loaded document sits in a context made of several."""

    name: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ContextInfo:
    """What the root model is shown instead of the text."""

    handle: str
    chars: int
    lines: int
    words: int
    documents: tuple[DocumentSpan, ...] = ()
    kind: str = "text"
    """``text`` (a string was given) or ``files`` (loaded from paths)."""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["documents"] = [asdict(d) for d in self.documents]
        return data


class ContextStore:
    """Texts behind handles, shared by every level of a recursive run (thread-safe)."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._info: dict[str, ContextInfo] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def put(self, text: str, *, documents: Sequence[DocumentSpan] = (), kind: str = "text") -> ContextInfo:
        """Store ``text``; return its metadata (with the new handle)."""
        if not isinstance(text, str):
            msg = f"a context must be text (str), got {type(text).__name__}; pass file paths to load files"
            raise TypeError(msg)
        with self._lock:
            handle = f"ctx{next(self._ids)}"
            info = ContextInfo(
                handle=handle,
                chars=len(text),
                lines=text.count("\n") + 1 if text else 0,
                words=_count_words(text),
                documents=tuple(documents),
                kind=kind,
            )
            self._texts[handle] = text
            self._info[handle] = info
        return info

    def text(self, handle: str) -> str:
        try:
            return self._texts[handle]
        except KeyError:
            msg = f"no context with handle {handle!r}; it was released or never stored"
            raise KeyError(msg) from None

    def info(self, handle: str) -> ContextInfo:
        self.text(handle)
        return self._info[handle]

    def release(self, handle: str) -> None:
        with self._lock:
            self._texts.pop(handle, None)
            self._info.pop(handle, None)

    def __len__(self) -> int:
        return len(self._texts)


def _count_words(text: str) -> int:
    # str.split on 10M characters allocates a list of ~2M strings; counting runs is cheaper.
    return sum(1 for _ in re.finditer(r"\S+", text)) if len(text) < 2_000_000 else len(text) // 6


def load_context(paths: Iterable[str | Path]) -> tuple[str, list[DocumentSpan], list[str]]:
    """Read files (every format `arag ingest` reads; folders by the same walk rules) into one text.

    Each document starts with a ``=== name ===`` line; the spans say where each one is. A file
    that cannot be read is reported in the returned problems, and the rest are loaded.

    Raises:
        ValueError: No file could be read.
    """
    files, problems = find_files(paths)
    parts: list[str] = []
    spans: list[DocumentSpan] = []
    offset = 0
    for path in files:
        try:
            loaded = load_file(path)
        except LoadError as exc:
            problems.append(exc)
            continue
        for doc in loaded.documents:
            name = doc.title or Path(doc.path).name
            if len(loaded.documents) > 1:
                name = f"{Path(doc.path).name}#{doc.doc_id}"
            block = f"=== {name} ===\n{doc.text.strip()}\n\n"
            spans.append(DocumentSpan(name, offset, offset + len(block)))
            parts.append(block)
            offset += len(block)
    messages = [str(p) for p in problems]
    if not parts:
        msg = "no readable text in " + ", ".join(str(p) for p in paths)
        if messages:
            msg += ": " + "; ".join(messages)
        raise ValueError(msg)
    return "".join(parts), spans, messages
