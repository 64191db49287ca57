"""Terminal output shared by the CLI commands: consoles and progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

out = Console(soft_wrap=True)
"""Results (stdout)."""
err = Console(stderr=True, soft_wrap=True)
"""Progress, warnings and errors (stderr), so stdout stays clean for pipes."""


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A progress display on stderr; yields a ``(stage, done, total)`` callback, one bar per stage."""
    tasks: dict[str, TaskID] = {}
    columns = (TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, disable=not enabled) as bars:

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield update
