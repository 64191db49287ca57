"""Ingestion: folders -> files -> documents -> chunks with stable ids -> dense + BM25 vectors -> a source.

:func:`walk` decides which files of a folder are read and reports every entry it leaves out (hidden,
``.gitignore``, tool folders, symlinks to outside, loops, FIFOs, oversized files);
:mod:`tools.ingest.loaders` reads files into documents (and says why it skips the ones it cannot
read); the pipeline (:class:`Ingestor`, with its :class:`Chunker`) splits them, embeds what is
new and writes it to a :class:`~tools.store.VectorStore`; :class:`Watcher` keeps a source in sync
with folders as files change.

Names are imported on first use (PEP 562): the CLI's terminal_safe does not load the pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools._lazy import lazy_exports

if TYPE_CHECKING:
    from tools.ingest._clean import clean_metadata, clean_text, terminal_safe
    from tools.ingest._pipeline import Chunk, Chunker, IngestError, Ingestor, IngestReport, Progress, chunk_id
    from tools.ingest._walk import FoundFile, Skipped, Walk, WalkOptions, walk
    from tools.ingest._watch import Watcher
    from tools.ingest.loaders import SUPPORTED_SUFFIXES

_EXPORTS = {
    "Chunk": "tools.ingest._pipeline",
    "Chunker": "tools.ingest._pipeline",
    "FoundFile": "tools.ingest._walk",
    "IngestError": "tools.ingest._pipeline",
    "IngestReport": "tools.ingest._pipeline",
    "Ingestor": "tools.ingest._pipeline",
    "Progress": "tools.ingest._pipeline",
    "SUPPORTED_SUFFIXES": "tools.ingest.loaders",
    "Skipped": "tools.ingest._walk",
    "Walk": "tools.ingest._walk",
    "WalkOptions": "tools.ingest._walk",
    "Watcher": "tools.ingest._watch",
    "chunk_id": "tools.ingest._pipeline",
    "clean_metadata": "tools.ingest._clean",
    "clean_text": "tools.ingest._clean",
    "terminal_safe": "tools.ingest._clean",
    "walk": "tools.ingest._walk",
}

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Chunk",
    "Chunker",
    "FoundFile",
    "IngestError",
    "IngestReport",
    "Ingestor",
    "Progress",
    "Skipped",
    "Walk",
    "WalkOptions",
    "Watcher",
    "chunk_id",
    "clean_metadata",
    "clean_text",
    "terminal_safe",
    "walk",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
