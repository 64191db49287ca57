"""Terminal output shared by the CLI commands: consoles and progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

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


class _Count(ProgressColumn):
    """``done/total`` for counted stages, bytes (``1.2/58.0 MB``) for the ``bytes`` stage."""

    def __init__(self) -> None:
        super().__init__()
        self._counts = MofNCompleteColumn()
        self._bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        return self._bytes.render(task) if task.description.strip() == "bytes" else self._counts.render(task)


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A progress display on stderr; yields a ``(stage, done, total)`` callback, one bar per stage
    (files, bytes read, chunks embedded, index), with the time elapsed and the time left."""
    tasks: dict[str, TaskID] = {}
    columns = (
        TextColumn("{task.description:>8}"),
        BarColumn(),
        _Count(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, disable=not enabled) as bars:

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield update
