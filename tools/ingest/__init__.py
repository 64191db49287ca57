"""Ingestion: files -> documents -> chunks with stable ids -> dense + BM25 vectors -> a source.

:mod:`tools.ingest.loaders` reads files into documents (and says why it skips the ones it cannot
read); the pipeline (:class:`Ingestor`, with its :class:`Chunker`) splits them, embeds what is
new and writes it to a :class:`~tools.store.VectorStore`.
"""

from tools.ingest._pipeline import Chunk, Chunker, IngestError, Ingestor, IngestReport, Progress, chunk_id

__all__ = ["Chunk", "Chunker", "IngestError", "IngestReport", "Ingestor", "Progress", "chunk_id"]
