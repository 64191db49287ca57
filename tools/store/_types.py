"""The store's vocabulary: what a source, a point and a hit are, the errors, filters and names.

Shared by the store semantics (:mod:`tools.store._core`), both engines and their users, who
import it from :mod:`tools.store`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # qdrant-client loads only when a filter is built: a plain search does not pay for it
    from qdrant_client import models

from tools.sparse import SparseVector

DENSE = "dense"
"""Name of the dense vector in every collection."""
SPARSE = "bm25"
"""Name of the sparse (BM25) vector in every collection."""
INDEXED_FIELDS = ("source", "doc_id", "path")
"""Payload fields with a keyword index in every source (filters and deletes by them are fast)."""

_SCHEMA_VERSION = 1
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

Progress = Callable[[str, int, int], None]
"""Progress callback: ``(stage, done, total)``."""

FilterSpec = Union[Mapping[str, Any], "models.Filter"]
"""A payload filter: ``{"doc_id": "42", "metadata.lang": ["en", "fr"]}`` (all keys must match; a
list matches any of its values), or a qdrant-client ``Filter`` for anything richer."""


class StoreError(RuntimeError):
    """A store operation failed for a reason the user can act on."""


class StoreLockedError(StoreError):
    """Another process holds the embedded store."""


class SourceNotFoundError(StoreError):
    """The named source (collection) does not exist."""


class SourceExistsError(StoreError):
    """A source of that name exists with an incompatible configuration."""


@dataclass(frozen=True, slots=True)
class Source:
    """A named collection of chunks and what ingestion recorded about it."""

    name: str
    """Collection name; what ``--source`` selects."""
    description: str
    """What the source holds, in words the source selector can match questions against."""
    dimension: int
    """Size of the dense vectors."""
    embedding_model: str
    """The model that made the dense vectors; queries must use the same one."""
    bm25_avgdl: float
    """Average chunk length in BM25 terms, fixed when the source was created."""
    created_at: str = ""
    """ISO timestamp of creation."""
    points: int = 0
    """Number of chunks stored (when listed with counts)."""


@dataclass(frozen=True, slots=True)
class Point:
    """One chunk to store: its id, both vectors and its payload."""

    id: str
    dense: Sequence[float]
    sparse: SparseVector
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """Where a stored chunk came from: enough to find chunks left over from an older version."""

    id: str
    doc_id: str
    path: str


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: a chunk id, its score in the query's scale, and its payload."""

    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


def build_filter(where: FilterSpec | None) -> models.Filter | None:
    """Turn a :data:`FilterSpec` into a qdrant-client ``Filter``."""
    if where is None:
        return None
    from qdrant_client import models

    if isinstance(where, models.Filter):
        return where
    conditions: list[models.Condition] = []
    for key, value in where.items():
        if isinstance(value, list | tuple | set | frozenset):
            values = list(value)
            all_str = all(isinstance(v, str) for v in values)
            all_int = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
            if not values or not (all_str or all_int):
                msg = f"filter {key!r}: a list must hold only strings or only integers, got {values!r}"
                raise ValueError(msg)
            conditions.append(models.FieldCondition(key=key, match=models.MatchAny(any=values)))
        elif isinstance(value, str | int | bool):
            conditions.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
        else:
            msg = f"filter {key!r}: match a string, integer, boolean or a list of them, got {value!r}"
            raise ValueError(msg)
    return models.Filter(must=conditions)


def source_metadata(description: str, dimension: int, embedding_model: str, bm25_avgdl: float) -> dict[str, Any]:
    """What a store records about a new source (collection metadata, or a file beside a shard)."""
    return {
        "arag_schema": _SCHEMA_VERSION,
        "description": description,
        "dimension": dimension,
        "embedding_model": embedding_model,
        "bm25_avgdl": bm25_avgdl,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def check_source_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a valid source name."""
    if not _SOURCE_NAME.match(name):
        msg = f"invalid source name {name!r}: use 1-64 letters, digits, '-' or '_', starting with a letter or digit"
        raise ValueError(msg)


def missing_source_message(name: str, known: Iterable[str]) -> str:
    """The error message for a source that does not exist, naming the ones that do."""
    names = ", ".join(known)
    hint = f"known sources: {names}" if names else "the store has no sources yet"
    return f"source {name!r} does not exist ({hint}); run `arag ingest PATH --source {name}` first"


def store_folder(location: str | Path) -> Path:
    """The folder of a store on disk, created if missing.

    Raises:
        StoreError: ``location`` is a file.
    """
    path = Path(location).expanduser()
    if path.exists() and not path.is_dir():
        msg = f"the store path {path} is a file; give a folder (it is created if missing)"
        raise StoreError(msg)
    path.mkdir(parents=True, exist_ok=True)
    return path


def locked_message(path: Path) -> str:
    """The error message for a store on disk that another process holds."""
    return (
        f"the store at {path} is open in another process (an embedded store allows one process at a "
        "time); close that process, or run a Qdrant server and set ARAG_QDRANT_URL for concurrent access"
    )


def source_from_metadata(name: str, meta: Mapping[str, Any]) -> Source:
    """A :class:`Source` from what :func:`source_metadata` recorded."""
    return Source(
        name=name,
        description=str(meta.get("description", "")),
        dimension=int(meta.get("dimension", 0)),
        embedding_model=str(meta.get("embedding_model", "")),
        bm25_avgdl=float(meta.get("bm25_avgdl", 1.0)),
        created_at=str(meta.get("created_at", "")),
    )
