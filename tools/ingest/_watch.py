"""Keeping a source in sync with folders as files change (``arag watch``).

A :class:`Watcher` first syncs the source with the paths (:meth:`Ingestor.ingest_paths` with
``sync=True``), then waits for file-system events (``watchfiles``: inotify on Linux, polling where
that is unavailable) and syncs again after each burst of changes. Every sync walks the paths
again (cheap: no file is read) and reads only the files whose size or modification time changed,
so a save costs the time of that file; deleted and renamed files lose their chunks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tools.ingest._pipeline import IngestError, Ingestor, IngestReport

__all__ = ["Watcher"]

log = logging.getLogger(__name__)


class Watcher:
    """Syncs ``source`` with ``paths`` now and after every change under them.

    Args:
        ingestor: Does each sync (its walk options decide which files count).
        paths: Files and folders to mirror.
        source: The source kept equal to them.
        description: Set on the source at the first sync.
        metadata: Stored with every chunk.
        debounce_ms: Longest time changes are gathered into one sync.
        step_ms: A sync starts once no new change came for this long.
        force_polling: Poll instead of using inotify (network file systems, some containers).
    """

    def __init__(
        self,
        ingestor: Ingestor,
        paths: Iterable[str | Path],
        source: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        debounce_ms: int = 1000,
        step_ms: int = 100,
        force_polling: bool | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.paths = [Path(p).expanduser().absolute() for p in paths]
        self.source = source
        self.description = description
        self.metadata = metadata
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.force_polling = force_polling
        self._fingerprints: dict[str, tuple[int, int]] = {}

    def sync(self) -> IngestReport:
        """Make the source equal to the paths now, reading only files changed since the last sync."""
        report = self.ingestor.ingest_paths(
            self.paths,
            self.source,
            description=self.description,
            metadata=self.metadata,
            sync=True,
            unchanged=self._fingerprints,
        )
        self._fingerprints = dict(report.fingerprints)
        return report

    def run(
        self,
        stop: threading.Event | None = None,
        on_error: Callable[[IngestError], None] | None = None,
    ) -> Iterator[IngestReport]:
        """Sync now, then after each burst of changes; yields each sync's report until ``stop`` is set.

        A sync that fails part-way (:class:`IngestError`: the embedding model or the store) is
        passed to ``on_error`` (logged when there is none) and the watch goes on: the next change
        retries what was not stored.
        """
        import watchfiles

        existing = [p for p in self.paths if p.exists()]
        if not existing:
            first = self._guarded(on_error)
            if first is not None:
                yield first
            msg = "nothing to watch: none of " + ", ".join(map(str, self.paths)) + " exists"
            raise FileNotFoundError(msg)
        # The watch starts before the first sync (its first, empty, batch comes when it is set
        # up), so a file saved while the first sync runs is seen by the next one, not missed.
        batches = watchfiles.watch(
            *existing,
            debounce=self.debounce_ms,
            step=self.step_ms,
            stop_event=stop,
            force_polling=self.force_polling,
            raise_interrupt=False,
            yield_on_timeout=True,
            rust_timeout=250,
        )
        synced = False
        for batch in batches:
            if synced and not batch:
                continue  # a timeout: nothing changed
            synced = True
            report = self._guarded(on_error)
            if report is not None:
                yield report

    def _guarded(self, on_error: Callable[[IngestError], None] | None) -> IngestReport | None:
        try:
            return self.sync()
        except IngestError as exc:
            if on_error is None:
                log.error("%s", exc)
            else:
                on_error(exc)
            return None
