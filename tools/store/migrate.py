"""Move sources between stores: export to a JSONL file, import from one, or copy store to store.

Every backend keeps the same payload schema and vectors, so an embedded store can move to a
Qdrant server (or back) without re-embedding anything. The file format is JSON lines: a
``{"type": "source", ...}`` line with the source's metadata, then one ``{"type": "point", ...}``
line per chunk with its id, dense vector, sparse vector and payload. A ``.gz`` suffix compresses.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tools.sparse import SparseVector
from tools.store import Point, Progress, Source, VectorStore

__all__ = ["TransferReport", "copy_sources", "export_sources", "import_sources"]

_BATCH = 512


@dataclass(frozen=True)
class TransferReport:
    """Sources and points moved."""

    sources: list[str]
    points: int


def export_sources(
    store: VectorStore, path: str | Path, *, sources: Sequence[str] | None = None, progress: Progress | None = None
) -> TransferReport:
    """Write ``sources`` (default: all) of ``store`` to a JSONL file."""
    chosen = _chosen(store, sources)
    total = 0
    with _open(Path(path), "w") as out:
        for source in chosen:
            out.write(json.dumps({"type": "source", **_source_record(source)}) + "\n")
            count = store.count(source.name)
            for done, point in enumerate(store.points(source.name), start=1):
                out.write(json.dumps(_point_record(source.name, point), ensure_ascii=False) + "\n")
                if progress and (done % _BATCH == 0 or done == count):
                    progress(source.name, done, count)
            total += count
    return TransferReport([s.name for s in chosen], total)


def import_sources(store: VectorStore, path: str | Path, *, progress: Progress | None = None) -> TransferReport:
    """Create the sources of a JSONL export in ``store`` and upsert their points.

    Importing into an existing source of the same model adds or replaces points by id.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"export file {path} not found; make one with `arag store export {path}`"
        raise FileNotFoundError(msg)
    names: list[str] = []
    total = 0
    with _open(path, "r") as lines:
        for source, points in _read(lines, path):
            names.append(source["name"])
            total += _write(store, source, points, progress)
    return TransferReport(names, total)


def copy_sources(
    origin: VectorStore, target: VectorStore, *, sources: Sequence[str] | None = None, progress: Progress | None = None
) -> TransferReport:
    """Copy ``sources`` (default: all) from one store to another, vectors and payloads as they are."""
    chosen = _chosen(origin, sources)
    total = 0
    for source in chosen:
        total += _write(target, _source_record(source), origin.points(source.name), progress, origin.count(source.name))
    return TransferReport([s.name for s in chosen], total)


def _chosen(store: VectorStore, names: Sequence[str] | None) -> list[Source]:
    return [store.get_source(n) for n in names] if names else store.list_sources()


def _write(
    store: VectorStore,
    source: dict[str, Any],
    points: Iterator[Point],
    progress: Progress | None,
    total: int = 0,
) -> int:
    store.create_source(
        source["name"],
        description=source["description"],
        dimension=source["dimension"],
        embedding_model=source["embedding_model"],
        bm25_avgdl=source["bm25_avgdl"],
    )
    done = 0
    batch: list[Point] = []
    for point in points:
        batch.append(point)
        if len(batch) == _BATCH:
            store.upsert(source["name"], batch)
            done += len(batch)
            batch = []
            if progress:
                progress(source["name"], done, max(total, done))
    store.upsert(source["name"], batch)
    done += len(batch)
    if progress:
        progress(source["name"], done, max(total, done))
    store.refresh_index(source["name"])
    return done


def _source_record(source: Source) -> dict[str, Any]:
    return {
        "name": source.name,
        "description": source.description,
        "dimension": source.dimension,
        "embedding_model": source.embedding_model,
        "bm25_avgdl": source.bm25_avgdl,
        "created_at": source.created_at,
    }


def _point_record(source: str, point: Point) -> dict[str, Any]:
    return {
        "type": "point",
        "source": source,
        "id": point.id,
        "dense": list(point.dense),
        "sparse": {"indices": point.sparse.indices, "values": point.sparse.values},
        "payload": point.payload,
    }


def _read(lines: IO[str], path: Path) -> Iterator[tuple[dict[str, Any], Iterator[Point]]]:
    """Yield each source with an iterator over its points, streaming the file once.

    The caller must exhaust each points iterator before asking for the next source: the points
    iterator is what reads up to, and remembers, the next source line.
    """
    pending: dict[str, Any] | None = None
    numbered = enumerate(lines, start=1)

    def points_of(name: str) -> Iterator[Point]:
        nonlocal pending
        for number, line in numbered:
            record = _parse(line, path, number)
            if record.get("type") == "source":
                pending = record
                return
            if record.get("type") != "point" or record.get("source") != name:
                msg = f"{path}:{number}: expected a point of source {name!r}; the export is damaged"
                raise ValueError(msg)
            sparse = record["sparse"]
            yield Point(
                record["id"], record["dense"], SparseVector(sparse["indices"], sparse["values"]), record["payload"]
            )
        pending = None

    for number, line in numbered:
        pending = _parse(line, path, number)
        break
    while pending is not None:
        if pending.get("type") != "source":
            msg = f"{path}: expected a source line before its points; is it an `arag store export` file?"
            raise ValueError(msg)
        source = pending
        pending = None
        yield source, points_of(source["name"])


def _parse(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        msg = f"{path}:{number}: not JSON ({exc.msg}); the export is damaged"
        raise ValueError(msg) from None
    if not isinstance(record, dict):
        msg = f"{path}:{number}: not a JSON object; the export is damaged"
        raise ValueError(msg)
    return record


def _open(path: Path, mode: str) -> IO[str]:
    if mode == "w":
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8")
