"""Ingestion: folders -> files -> documents -> chunks with stable ids -> dense + BM25 vectors -> a source.

:func:`walk` decides which files of a folder are read and reports every entry it leaves out (hidden,
``.gitignore``, tool folders, symlinks to outside, loops, FIFOs, oversized files);
:mod:`tools.ingest.loaders` reads files into documents (and says why it skips the ones it cannot
read); the pipeline (:class:`Ingestor`, with its :class:`Chunker`) splits them, embeds what is
new and writes it to a :class:`~tools.store.VectorStore`; :class:`Watcher` keeps a source in sync
with folders as files change.
"""

from tools.ingest._clean import clean_metadata, clean_text, terminal_safe
from tools.ingest._pipeline import Chunk, Chunker, IngestError, Ingestor, IngestReport, Progress, chunk_id
from tools.ingest._walk import FoundFile, Skipped, Walk, WalkOptions, walk
from tools.ingest._watch import Watcher
from tools.ingest.loaders import SUPPORTED_SUFFIXES

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
