"""The CLI's progress bars (``rich.progress``), apart from :mod:`agents._console` so that a command
that shows none (``arag search``, ``arag sources``, ``arag --help``) does not import them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
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


class _Count(ProgressColumn):
    """``done/total`` for counted stages, bytes (``1.2/58.0 MB``) for the ``bytes`` stage."""

    def __init__(self) -> None:
        super().__init__()
        self._counts = MofNCompleteColumn()
        self._bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        return self._bytes.render(task) if task.description.strip() == "bytes" else self._counts.render(task)


@contextmanager
def progress_bars(console: Console, *, enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """See :func:`agents._console.progress_bars`."""
    tasks: dict[str, TaskID] = {}
    columns = (
        TextColumn("{task.description:>8}"),
        BarColumn(),
        _Count(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not enabled) as bars:

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield update
