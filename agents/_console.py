"""Terminal output shared by the CLI commands: consoles and progress bars."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from rich.console import Console
from rich.markup import escape

from tools.ingest._clean import terminal_safe

out = Console(soft_wrap=True)
"""Results (stdout)."""
err = Console(stderr=True, soft_wrap=True)
"""Progress, warnings and errors (stderr), so stdout stays clean for pipes."""


def shown(text: str, *, lines: bool = False) -> str:
    """Text from documents, models or users made safe to print: terminal escape sequences and
    control characters removed (a document must not clear the terminal or retitle it), line
    breaks and tabs made spaces unless ``lines`` (a file name must not forge a line of output),
    then Rich markup escaped."""
    safe = terminal_safe(text)
    if not lines:
        safe = safe.replace("\n", " ").replace("\t", " ")
    return escape(safe)


def progress_bars(enabled: bool = True) -> AbstractContextManager[Callable[[str, int, int], None]]:
    """A progress display on stderr; yields a ``(stage, done, total)`` callback, one bar per stage
    (files, bytes read, chunks embedded, index), with the time elapsed and the time left."""
    from agents._progress import progress_bars as bars  # rich.progress: only where bars are shown

    return bars(err, enabled=enabled)
