"""Extractive answers: the sentences of retrieved chunks that best match the question, cited.

No language model is involved: a sentence scores by the question terms it shares (weighted by
how rare they are among the candidate sentences) and, when an embedding model is at hand, by its
cosine similarity to the question. It is honest about what it is and abstains when no sentence
shares a content word with the question.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from langchain_core.embeddings import Embeddings

from tools.embeddings import embed_array
from tools.questions import kind_pattern, read_question
from tools.retrieval import RetrievedChunk
from tools.sparse import Bm25Encoder

__all__ = ["ExtractiveAnswer", "answer_pattern", "extractive_answer", "split_sentences"]

_HEADING_LINE = re.compile(r"^[ \t]{0,3}#{1,6}(?:[ \t][^\n]*)?$", re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}|\n(?=[-*#]|\d+\.)")


@dataclass(frozen=True, slots=True)
class ExtractiveAnswer:
    """Sentences quoted from the sources, each followed by its citation ``[n]``."""

    text: str
    """The answer, or an abstention message when ``abstained``."""
    citations: list[RetrievedChunk]
    """Cited chunks; citation ``[n]`` is ``citations[n - 1]``."""
    abstained: bool
    sentences: tuple[str, ...] = ()
    """The quoted sentences without citations, best first."""


_ANSWER_TYPE_BONUS = 0.3


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences (and list items) on punctuation and blank lines; whitespace
    inside a sentence is collapsed. Markdown heading lines (``# Title``) are titles, not
    sentences: they are left out, so no answer opens with one or runs it into the next sentence."""
    prose = _HEADING_LINE.sub("\n\n", text)
    return [" ".join(s.split()) for s in _SENTENCE_END.split(prose) if s and s.strip()]


def answer_pattern(question: str) -> re.Pattern[str] | None:
    """What a sentence holding the kind of answer the question asks for looks like: a date for
    "when", a number for "how many", a name for "who", a place for "where"; None otherwise
    (:func:`tools.questions.read_question` reads the kind)."""
    return kind_pattern(read_question(question).kind)


def extractive_answer(
    question: str,
    chunks: Sequence[RetrievedChunk],
    *,
    embeddings: Embeddings | None = None,
    encoder: Bm25Encoder | None = None,
    max_sentences: int = 2,
) -> ExtractiveAnswer:
    """Answer ``question`` with the best sentences of ``chunks`` (ranked best first).

    Args:
        question: The question.
        chunks: Retrieved chunks, best first; a sentence from a higher-ranked chunk wins ties.
        embeddings: Optional embedding model for semantic similarity of sentences.
        encoder: Tokenizer of the lexical match (defaults to the BM25 encoder's).
        max_sentences: Most sentences quoted.
    """
    encoder = encoder or Bm25Encoder()
    question_terms = set(encoder.tokenize(question))
    candidates = [
        (rank, sentence)
        for rank, chunk in enumerate(chunks)
        for sentence in split_sentences(chunk.text)
        if len(sentence) >= 20
    ]
    if not candidates or not question_terms:
        return _abstain(question)
    terms = [set(encoder.tokenize(s)) for _, s in candidates]
    df = Counter(t for ts in terms for t in ts if t in question_terms)
    n = len(candidates)
    weight = {t: math.log(1 + n / df[t]) for t in df}
    total = sum(weight.get(t, math.log(1 + n)) for t in question_terms)
    lexical = np.array([sum(weight.get(t, 0.0) for t in ts & question_terms) / total for ts in terms])
    if lexical.max() <= 0:
        return _abstain(question)
    pattern = answer_pattern(question)
    typed = np.array([bool(pattern and pattern.search(s)) for _, s in candidates])
    scores = lexical + np.array([0.05 / (1 + rank) for rank, _ in candidates]) + _ANSWER_TYPE_BONUS * typed
    if embeddings is not None:
        vectors = embed_array(embeddings, [question] + [s for _, s in candidates])
        scores = scores + vectors[1:] @ vectors[0]
    order = [int(i) for i in np.argsort(-scores, kind="stable")]
    picked = [i for i in order if lexical[i] > 0][:max_sentences]
    # Keep only sentences close to the best one, so a weak match does not dilute a strong one.
    picked = [i for i in picked if scores[i] >= 0.75 * scores[picked[0]]]
    if pattern is not None and not typed[picked].any():
        # The matching sentences lack what was asked ("when?" but no date): quote the best
        # sentence of the top chunk that has it, which often follows the one naming the subject.
        top_chunk = candidates[picked[0]][0]
        typed_in_top = [i for i in order if typed[i] and candidates[i][0] == top_chunk]
        if typed_in_top:
            picked = [*picked[: max_sentences - 1], typed_in_top[0]]
    best_first = tuple(candidates[i][1] for i in picked)
    picked.sort(key=lambda i: (candidates[i][0], i))  # reading order within the ranking
    cited: dict[int, int] = {}
    parts = []
    for i in picked:
        rank, sentence = candidates[i]
        number = cited.setdefault(rank, len(cited) + 1)
        parts.append(_cite(sentence, number))
    citations = [chunks[rank] for rank in cited]
    return ExtractiveAnswer(" ".join(parts), citations, abstained=False, sentences=best_first)


def _cite(sentence: str, number: int) -> str:
    """Put the citation inside the sentence: "... in 1889 [1]." rather than "... in 1889. [1]"."""
    if sentence[-1] in ".!?":
        return f"{sentence[:-1]} [{number}]{sentence[-1]}"
    return f"{sentence} [{number}]"


def _abstain(question: str) -> ExtractiveAnswer:
    text = f"I found nothing in the sources that answers {question.strip()!r}."
    return ExtractiveAnswer(text, [], abstained=True)
