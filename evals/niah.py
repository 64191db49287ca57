"""Needle-in-a-haystack items built from the Paul Graham essays (RULER-style random needles).

The haystack is the essays in file order, repeated to the requested length. Each item hides one
needle, "The special magic number for <word> is <7-digit number>.", at a depth between 0% and
100% (at a sentence boundary), and asks for it; the answer is exact. Everything is derived
from ``seed``, so the same arguments always give the same items.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Needle", "NiahItem", "haystack", "niah_items", "niah_needles"]

DEFAULT_ESSAYS = (
    Path(__file__).resolve().parents[1].parent / "shared/data/long_context_niah_babilong/paul_graham_essays.jsonl"
)

# Needle keys: concrete nouns that do not occur as "magic number for X" in the essays.
_KEYS = (
    "lighthouse", "walrus", "teapot", "glacier", "accordion", "pelican", "lantern", "cactus", "violin",
    "harbor", "meteor", "saddle", "origami", "avalanche", "tangerine", "compass", "falcon", "quarry",
    "marmalade", "kayak", "sapphire", "tornado", "pumpkin", "caravan", "juniper", "beacon", "hammock",
    "mongoose", "pretzel", "zeppelin",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class NiahItem:
    id: str
    question: str
    answer: str
    context: str
    depth: float
    """Where the needle sits, as a fraction of the context (0.0 start, 1.0 end)."""
    chars: int


def haystack(chars: int, essays: Path = DEFAULT_ESSAYS) -> str:
    """The essays in file order, repeated and cut to ``chars`` characters.

    Raises:
        FileNotFoundError: The essays file is missing (it is in ``shared/data``).
    """
    if not essays.is_file():
        msg = f"essays not found at {essays}; pass essays= the paul_graham_essays.jsonl path"
        raise FileNotFoundError(msg)
    with essays.open(encoding="utf-8") as handle:
        text = "\n\n".join(json.loads(line)["text"].strip() for line in handle if line.strip())
    return (text * (chars // len(text) + 1))[:chars]


def _insert(text: str, needle: str, depth: float) -> str:
    at = int(len(text) * depth)
    if 0 < at < len(text):
        boundary = text.rfind(". ", 0, at)
        at = boundary + 2 if boundary >= 0 else 0
    return text[:at] + (" " if at and text[at - 1] != " " else "") + needle + " " + text[at:]


def niah_items(
    lengths: Sequence[int],
    depths: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    *,
    per_depth: int = 1,
    seed: int = 0,
    essays: Path = DEFAULT_ESSAYS,
) -> Iterator[NiahItem]:
    """One item per (length, depth, repetition), generated lazily (a 10M-character context each)."""
    bases: dict[int, str] = {}
    for needle in niah_needles(lengths, depths, per_depth=per_depth, seed=seed):
        if needle.chars not in bases:
            bases = {needle.chars: haystack(needle.chars, essays)}  # one length's haystack at a time
        yield NiahItem(
            id=needle.id,
            question=needle.question,
            answer=needle.answer,
            context=_insert(bases[needle.chars], needle.sentence, needle.depth),
            depth=needle.depth,
            chars=needle.chars,
        )


@dataclass(frozen=True, slots=True)
class Needle:
    """What :func:`niah_items` hides where, without the context (cheap to list)."""

    id: str
    question: str
    answer: str
    sentence: str
    depth: float
    chars: int

    def context(self, essays: Path = DEFAULT_ESSAYS) -> str:
        """The haystack of ``chars`` characters with this needle at its depth."""
        return _insert(haystack(self.chars, essays), self.sentence, self.depth)


def niah_needles(
    lengths: Sequence[int],
    depths: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    *,
    per_depth: int = 1,
    seed: int = 0,
) -> list[Needle]:
    """The needles of :func:`niah_items` with the same arguments, in the same order."""
    rng = random.Random(seed)  # noqa: S311 - reproducible benchmark data, not secrets
    needles = []
    for length in lengths:
        for depth in depths:
            for rep in range(per_depth):
                key = rng.choice(_KEYS)
                value = str(rng.randrange(1_000_000, 10_000_000))
                needles.append(
                    Needle(
                        id=f"niah-{length}-{depth:.2f}-{rep}",
                        question=f"What is the special magic number for {key}?",
                        answer=value,
                        sentence=f"The special magic number for {key} is {value}.",
                        depth=depth,
                        chars=length,
                    )
                )
    return needles
