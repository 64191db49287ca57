"""Eval datasets: one item type for every loader, and the corpus an agent searches.

``load_dataset(name_or_path)`` understands:

- ``scifact`` / any BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/``): retrieval items
  (``gold_ids``), split ``test`` or ``train``;
- ``hotpotqa`` / a folder with HotpotQA's ``questions.jsonl``: answers, supporting facts, gold
  paragraphs; split ``dev`` (the first half of the file, for tuning), ``test`` (the second half);
- ``squad2`` / a SQuAD 2.0 folder: answerable and unanswerable questions; split ``dev`` (the first
  half of the articles), ``test`` (the second half), or ``unseen`` (the test half's questions with
  only the dev half's articles ingested: every one should be declined);
- ``niah`` and ``babilong``: long-context items generated from the essays and bAbI files
  (lengths chosen by the caller, exact answers);
- a ``.jsonl`` file of ``{id, question, answer | answers, gold_ids, category}``, asked against a
  source you ingested (``source=``).

Items never hold a long context in the results: ``context`` is generated on demand and only its
length and hash are recorded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from evals.beir import load_beir
from evals.niah import DEFAULT_ESSAYS, haystack, niah_needles
from tools.ingest.loaders import Document

__all__ = ["DATA_DIR", "EvalDataset", "EvalItem", "eval_data_dir", "load_dataset"]

DATA_DIR = DEFAULT_ESSAYS.parents[1]
"""The shared evaluation data (``../shared/data`` next to the project); ``ARAG_EVAL_DATA`` overrides it."""


def eval_data_dir() -> Path:
    """Where named datasets are read from: ``ARAG_EVAL_DATA``, else ``../shared/data`` next to the project."""
    override = os.environ.get("ARAG_EVAL_DATA")
    return Path(override).expanduser() if override else DATA_DIR


Kind = Literal["qa", "retrieval", "long"]
_NAMED = {"scifact": "beir_scifact", "hotpotqa": "hotpotqa_dev_distractor", "squad2": "squad2_dev_cs224n"}


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One question with what a correct run looks like."""

    id: str
    question: str
    answers: tuple[str, ...] = ()
    """Acceptable answers; empty for an unanswerable question (or a retrieval-only item)."""
    answerable: bool = True
    gold_ids: tuple[str, ...] = ()
    """Document ids that hold the answer (retrieval and citation metrics)."""
    supporting_facts: tuple[tuple[str, int], ...] = ()
    """HotpotQA (title, sentence index) pairs."""
    category: str = ""
    titles: dict[str, str] = field(default_factory=dict)
    """Document id -> title of the gold documents (HotpotQA facts are named by title)."""
    sentences: dict[str, list[str]] = field(default_factory=dict)
    """Title -> sentences of the item's context paragraphs (HotpotQA supporting facts)."""
    make_context: Callable[[], str] | None = field(default=None, compare=False, repr=False)
    """Long-context items: builds the haystack when the item runs (it is never stored)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answers": list(self.answers),
            "answerable": self.answerable,
            "gold_ids": list(self.gold_ids),
            "supporting_facts": [list(f) for f in self.supporting_facts],
            "category": self.category,
        }


@dataclass(slots=True)
class EvalDataset:
    """Items, and the documents to ingest as ``source`` (none when the source already exists)."""

    name: str
    kind: Kind
    split: str
    items: list[EvalItem]
    source: str
    corpus: Callable[[], Iterator[Document]] | None = None
    corpus_file: Path | None = None
    params: dict[str, Any] = field(default_factory=dict)
    """How generated items were made (lengths, seed), part of the fingerprint."""

    def fingerprint(self) -> str:
        """sha256 over the items and generation parameters: equal means the same questions."""
        digest = hashlib.sha256(json.dumps([self.name, self.split, self.params], sort_keys=True).encode())
        for item in self.items:
            digest.update(json.dumps(item.as_dict(), sort_keys=True).encode())
        return digest.hexdigest()

    def corpus_fingerprint(self) -> str:
        """sha256 of the corpus file (empty when the corpus is generated or already ingested)."""
        if self.corpus_file is None:
            return ""
        digest = hashlib.sha256()
        with self.corpus_file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if "corpus_titles" in self.params:  # part of the file only: another store
            digest.update(json.dumps(sorted(self.params["corpus_titles"])).encode())
        return digest.hexdigest()


def load_dataset(
    name_or_path: str | Path,
    *,
    split: str | None = None,
    source: str | None = None,
    lengths: Sequence[int] = (100_000,),
    seed: int = 0,
    data_dir: Path | None = None,
) -> EvalDataset:
    """Load a dataset by name (``scifact``, ``hotpotqa``, ``squad2``, ``niah``, ``babilong``) or path.

    Raises:
        FileNotFoundError: The name is unknown and no such file or folder exists.
        ValueError: The split is not one the dataset has, or a JSONL line is malformed.
    """
    name = str(name_or_path)
    data_dir = data_dir or eval_data_dir()
    if name == "niah":
        return _niah(lengths, seed, data_dir)
    if name == "babilong":
        return _babilong(lengths, seed, data_dir)
    path = data_dir / _NAMED[name] if name in _NAMED else Path(name).expanduser()
    if path.is_file() and path.suffix == ".jsonl":
        return _generic_jsonl(path, source)
    if path.is_dir() and (path / "qrels").is_dir():
        return _beir(path, split or "test")
    if path.is_dir() and (path / "questions.jsonl").is_file():
        first = json.loads((path / "questions.jsonl").open(encoding="utf-8").readline() or "{}")
        if "supporting_facts" in first:
            return _hotpotqa(path, split or "test")
        if "is_impossible" in first:
            return _squad2(path, split or "test")
    if name in _NAMED:
        msg = f"dataset {name!r} not found at {path}; set ARAG_EVAL_DATA to the folder that holds {_NAMED[name]}/"
        raise FileNotFoundError(msg)
    msg = (
        f"no dataset {name!r}: use scifact, hotpotqa, squad2, niah, babilong, a BEIR/HotpotQA/SQuAD 2.0 "
        "folder, or a .jsonl file of {id, question, answer(s), gold_ids, category}"
    )
    raise FileNotFoundError(msg)


def _halves(items: list[EvalItem], split: str, name: str) -> list[EvalItem]:
    """``dev`` is the first half (tune on it), ``test`` the second (report on it), ``all`` both."""
    half = len(items) // 2
    if split == "dev":
        return items[:half]
    if split == "test":
        return items[half:]
    if split == "all":
        return items
    msg = f"{name} has splits dev (first half, for tuning), test (second half) and all; got {split!r}"
    raise ValueError(msg)


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                msg = f"{path}:{number} is not valid JSON ({exc.msg}); each line must be one JSON object"
                raise ValueError(msg) from exc
            if not isinstance(row, dict):
                msg = f"{path}:{number} is not a JSON object"
                raise ValueError(msg)
            yield row


def _corpus(path: Path, titles: set[str] | None = None) -> Callable[[], Iterator[Document]]:
    def documents() -> Iterator[Document]:
        for row in _read_jsonl(path):
            if titles is None or str(row.get("title", "")) in titles:
                yield Document(str(row["_id"]), str(row.get("text", "")), str(row.get("title", "")), str(path))

    return documents


# -- loaders --------------------------------------------------------------------------------------


def _beir(path: Path, split: str) -> EvalDataset:
    beir = load_beir(path, split)
    items = [
        EvalItem(id=qid, question=text, gold_ids=tuple(d for d, grade in beir.qrels[qid].items() if grade > 0))
        for qid, text in beir.queries.items()
    ]
    return EvalDataset(beir.name, "retrieval", split, items, beir.name, _corpus(beir.corpus_path), beir.corpus_path)


def _hotpotqa(path: Path, split: str) -> EvalDataset:
    ids_by_title = {str(r["title"]): str(r["_id"]) for r in _read_jsonl(path / "corpus.jsonl")}
    items = []
    for row in _read_jsonl(path / "questions.jsonl"):
        facts = tuple((str(t), int(i)) for t, i in row.get("supporting_facts", []))
        gold_titles = list(dict.fromkeys(t for t, _ in facts))
        gold = tuple(ids_by_title[t] for t in gold_titles if t in ids_by_title)
        items.append(
            EvalItem(
                id=str(row["_id"]),
                question=str(row["question"]),
                answers=(str(row["answer"]),),
                gold_ids=gold,
                supporting_facts=facts,
                category=str(row.get("type", "")),
                titles={ids_by_title[t]: t for t in gold_titles if t in ids_by_title},
                sentences={str(t): [str(s) for s in sents] for t, sents in row.get("context", [])},
            )
        )
    return EvalDataset(
        "hotpotqa", "qa", split, _halves(items, split, "hotpotqa"), "hotpotqa", _corpus(path / "corpus.jsonl"),
        path / "corpus.jsonl",
    )  # fmt: skip


def _squad2(path: Path, split: str) -> EvalDataset:
    rows = list(_read_jsonl(path / "questions.jsonl"))
    titles = list(dict.fromkeys(str(r["title"]) for r in rows))
    half = len(titles) // 2
    chosen = {"dev": set(titles[:half]), "test": set(titles[half:]), "all": set(titles)}.get(split)
    if split == "unseen":  # the test half's questions over the dev half's articles: none is there
        chosen = set(titles[half:])
    elif split == "unseen-dev":  # the same the other way round, for tuning
        chosen = set(titles[:half])
    if chosen is None:
        msg = (
            f"squad2 has splits dev (first half of the articles, for tuning), test (second half), all, and "
            f"unseen (the test half's questions with only the dev half's articles ingested; unseen-dev the other "
            f"way round, for tuning); got {split!r}"
        )
        raise ValueError(msg)
    items = [
        EvalItem(
            id=str(r["id"]),
            question=str(r["question"]),
            answers=() if r["is_impossible"] else tuple(dict.fromkeys(str(a) for a in r["answers"])),
            answerable=not r["is_impossible"],
            gold_ids=(str(r["gold_passage_id"]),),
            category="unanswerable" if r["is_impossible"] else "answerable",
        )
        for r in rows
        if r["title"] in chosen
    ]
    corpus = path / "corpus.jsonl"
    if split in ("unseen", "unseen-dev"):
        ingested = sorted(titles[:half] if split == "unseen" else titles[half:])
        items = [replace(i, answers=(), answerable=False, category="article not ingested") for i in items]
        params = {"corpus_titles": ingested}
        return EvalDataset("squad2", "qa", split, items, "squad2", _corpus(corpus, set(ingested)), corpus, params)
    return EvalDataset("squad2", "qa", split, items, "squad2", _corpus(corpus), corpus)


def _generic_jsonl(path: Path, source: str | None) -> EvalDataset:
    if not source:
        msg = f"{path.name} holds questions only: name the ingested source to ask them against (--source NAME)"
        raise ValueError(msg)
    items = []
    for number, row in enumerate(_read_jsonl(path), 1):
        if not str(row.get("question", "")).strip():
            msg = f"{path}:{number} has no question; each line needs at least {{id, question}}"
            raise ValueError(msg)
        answers = row.get("answers", row.get("answer", []))
        answers = [answers] if isinstance(answers, str) else list(answers or [])
        items.append(
            EvalItem(
                id=str(row.get("id", number)),
                question=str(row["question"]),
                answers=tuple(str(a) for a in answers),
                answerable=bool(row.get("answerable", True)),
                gold_ids=tuple(str(g) for g in row.get("gold_ids", [])),
                category=str(row.get("category", "")),
            )
        )
    return EvalDataset(path.stem, "qa", "all", items, source)


def _niah(lengths: Sequence[int], seed: int, data_dir: Path) -> EvalDataset:
    essays = data_dir / "long_context_niah_babilong" / "paul_graham_essays.jsonl"
    items = [
        EvalItem(
            id=needle.id,
            question=needle.question,
            answers=(needle.answer,),
            category=f"{needle.chars:,} chars",
            make_context=functools.partial(needle.context, essays),
        )
        for needle in niah_needles(lengths, seed=seed)
    ]
    return EvalDataset("niah", "long", "all", items, "", params={"lengths": list(lengths), "seed": seed})


def _babilong(lengths: Sequence[int], seed: int, data_dir: Path, per_task: int = 4) -> EvalDataset:
    """BABILong-style items: a bAbI story's facts scattered, in order, through essay text of each
    length; the question is the story's, the answer one word."""
    folder = data_dir / "long_context_niah_babilong"
    samples = list(_read_jsonl(folder / "babi_qa1-qa5_test.jsonl"))
    rng = random.Random(seed)  # noqa: S311 - reproducible benchmark data, not secrets
    by_task: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        by_task.setdefault(str(sample["task"]), []).append(sample)
    chosen = [s for task in sorted(by_task) for s in rng.sample(by_task[task], per_task)]
    essays = folder / "paul_graham_essays.jsonl"
    items = []
    for length in lengths:
        for sample in chosen:
            facts = [str(sentence) for _, sentence in sample["facts"]]
            item_seed = f"{seed}-{length}-{sample['id']}"
            items.append(
                EvalItem(
                    id=f"{sample['id']}-{length}",
                    question=str(sample["question"]),
                    answers=(str(sample["answer"]),),
                    category=str(sample["task"]),
                    make_context=_lazy_babilong(facts, length, item_seed, essays),
                )
            )
    return EvalDataset("babilong", "long", "all", items, "", params={"lengths": list(lengths), "seed": seed})


def _lazy_babilong(facts: list[str], length: int, item_seed: str, essays: Path) -> Callable[[], str]:
    def build() -> str:
        background = haystack(max(length - sum(len(f) + 1 for f in facts), 1_000), essays)
        cuts = [m.end() for m in re.finditer(r"\. ", background)]
        rng = random.Random(item_seed)  # noqa: S311 - reproducible benchmark data, not secrets
        places = sorted(rng.sample(cuts, min(len(facts), len(cuts))))
        out, last = [], 0
        for place, fact in zip(places, facts, strict=False):
            out += [background[last:place], fact, " "]
            last = place
        return "".join([*out, background[last:]])

    return build
