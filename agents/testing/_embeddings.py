"""A deterministic, model-free embedder for tests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
from langchain_core.embeddings import Embeddings

__all__ = ["FakeEmbeddings"]


class FakeEmbeddings(Embeddings):
    """Deterministic bag-of-words hashing embedder: texts that share words are close.

    Each word is hashed into one of ``dimension`` buckets with a sign, and the vector is
    normalised; the same text always gets the same vector, on every machine. Fast and model-free,
    for tests of everything around the model: ingestion, retrieval, agents, evals. It implements
    LangChain's ``Embeddings`` and ``embed_array`` (a float32 array), like the project's embedders.

    ``model_name`` is the identity a collection records: a store embedded with one name refuses
    queries from another. Subclass or pass ``model_name`` / ``dimension`` to test that check.

    Args:
        model_name: Another identity than the class's (e.g. to test a model mismatch).
        dimension: Another vector size than the class's.

    Attributes:
        model_name: The model identity recorded with stored vectors (``"fake-hash-64"``).
        dimension: Vector size (64).
        calls: The batch size of every embedding call so far, in order (``[]`` when nothing was
            embedded, e.g. after an idempotent re-ingest).

    Example:
        >>> from agents.testing import FakeEmbeddings
        >>> embeddings = FakeEmbeddings()
        >>> len(embeddings.embed_query("penguins breed in winter"))
        64
        >>> embeddings.embed_documents(["a b", "a b"])[0] == embeddings.embed_query("a b")
        True
        >>> embeddings.calls
        [1, 2, 1]
    """

    model_name = "fake-hash-64"
    dimension = 64

    def __init__(self, *, model_name: str | None = None, dimension: int | None = None) -> None:
        if model_name is not None:
            self.model_name = model_name
        if dimension is not None:
            if dimension < 1:
                msg = f"dimension must be >= 1, got {dimension}"
                raise ValueError(msg)
            self.dimension = dimension
        self.calls: list[int] = []

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into a ``(len(texts), dimension)`` float32 array of unit rows."""
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.md5(word.encode(), usedforsecurity=False).digest()
                out[row, digest[0] % self.dimension] += 1.0 if digest[1] % 2 else -1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else 1.0 / np.sqrt(self.dimension)
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (one call, whatever the number of texts)."""
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        """Embed one query."""
        return self.embed_array([text])[0].tolist()  # type: ignore[no-any-return]
