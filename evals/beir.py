"""BEIR-format datasets: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BeirDataset", "load_beir"]


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR dataset split: the corpus file, the split's queries and their relevance judgements."""

    name: str
    corpus_path: Path
    queries: dict[str, str]
    """Query id -> text, only the queries judged in this split."""
    qrels: dict[str, dict[str, int]]
    """Query id -> {document id -> relevance grade}."""
    split: str

    def corpus_hash(self) -> str:
        """sha256 of the corpus file (identifies a cached index)."""
        digest = hashlib.sha256()
        with self.corpus_path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    """Load a BEIR folder; raises ``FileNotFoundError`` naming the missing file."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        msg = f"dataset folder {root} not found; give a BEIR folder with corpus.jsonl, queries.jsonl, qrels/"
        raise FileNotFoundError(msg)
    corpus = root / "corpus.jsonl"
    qrels_path = root / "qrels" / f"{split}.tsv"
    queries_path = root / "queries.jsonl"
    for needed in (corpus, qrels_path, queries_path):
        if not needed.is_file():
            available = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
            hint = f" (splits here: {', '.join(available)})" if available and needed == qrels_path else ""
            msg = f"{needed} not found{hint}; a BEIR folder has corpus.jsonl, queries.jsonl and qrels/<split>.tsv"
            raise FileNotFoundError(msg)
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries: dict[str, str] = {}
    with queries_path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                item = json.loads(line)
                if item["_id"] in qrels:
                    queries[item["_id"]] = item["text"]
    missing = set(qrels) - set(queries)
    if missing:
        msg = f"{len(missing)} judged queries of split {split!r} are missing from {queries_path}"
        raise ValueError(msg)
    return BeirDataset(root.name, corpus, queries, qrels, split)
