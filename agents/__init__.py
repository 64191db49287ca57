"""The public face: settings, and the factories that turn settings into a store, embeddings,
a retriever and an ingestor. The CLI (``arag``) lives in :mod:`agents.cli`."""

from agents.components import build_embeddings, build_ingestor, build_retriever, build_store
from agents.settings import Settings

__all__ = ["Settings", "build_embeddings", "build_ingestor", "build_retriever", "build_store"]
