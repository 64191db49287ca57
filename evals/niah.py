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

__all__ = ["NiahItem", "haystack", "niah_items"]

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
    rng = random.Random(seed)  # noqa: S311 - reproducible benchmark data, not secrets
    for length in lengths:
        base = haystack(length, essays)
        for depth in depths:
            for rep in range(per_depth):
                key = rng.choice(_KEYS)
                value = str(rng.randrange(1_000_000, 10_000_000))
                needle = f"The special magic number for {key} is {value}."
                yield NiahItem(
                    id=f"niah-{length}-{depth:.2f}-{rep}",
                    question=f"What is the special magic number for {key}?",
                    answer=value,
                    context=_insert(base, needle, depth),
                    depth=depth,
                    chars=length,
                )
