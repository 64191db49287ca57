"""What the RAG graph's judgement steps return, and the narrow protocols that produce it.

Every step that needs judgement has two implementations: ``LLM...`` in :mod:`graphs.llm_strategies`
(any chat model, structured answers validated and repaired once, then a deterministic fallback)
and ``Heuristic...`` in :mod:`graphs.heuristic` (no model: keywords, embedding similarity, lexical
overlap, extractive answers). :class:`Strategies` bundles one of each for a run.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import httpx
from langchain_core.messages import BaseMessage

from graphs.budget import Budget
from tools.questions import terms as terms  # re-exported: the strategies' shared helper
from tools.retrieval import RetrievedChunk
from tools.store import Source, StoreError

__all__ = [
    "CITATION",
    "TRANSIENT_ERRORS",
    "Answerer",
    "Draft",
    "Grader",
    "Grading",
    "QueryAnalyzer",
    "QueryPlan",
    "Refiner",
    "Selection",
    "SourceSelector",
    "Strategies",
    "Validator",
    "Verdict",
    "check_citations",
    "citation_numbers",
    "citation_verdict",
    "lexical_support",
]

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    httpx.TransportError,
    StoreError,
)
"""What a search may fail with and a run go on without that search (it may work next time): the
network, a store that is busy, down, locked or unreachable (a Qdrant server that does not answer is
a :class:`~tools.store.StoreError`). Anything else is an error of the set-up (another
embedding model, a bad filter), which no retry fixes: the run ends with it."""


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """What ``analyze`` makes of a question."""

    standalone: str
    """The question rewritten to stand alone (follow-ups resolved against the thread)."""
    queries: list[str]
    """Search queries, the standalone question first."""
    sub_questions: list[str]
    """What the evidence must cover: the question itself, or its parts for a multi-hop question."""
    note: str = ""
    hops: int = 1
    """Retrieval rounds to run at least (2 for a question about something it only describes: a
    second hop searches for the bridge even when the first round covers the question's words)."""


@dataclass(frozen=True, slots=True)
class Selection:
    """Sources chosen for a question, and how."""

    sources: list[str]
    note: str = ""
    fallback: bool = False
    """True when the choice could not be made and all sources are searched."""


@dataclass(frozen=True, slots=True)
class Grading:
    """Relevant chunks, best first, and the sub-questions they leave uncovered."""

    kept: list[RetrievedChunk]
    missing: list[str]
    note: str = ""


@dataclass(frozen=True, slots=True)
class Draft:
    """An answer with citations: ``[n]`` in ``text`` is ``citations[n - 1]`` (a chunk id)."""

    text: str
    citations: list[str]
    abstained: bool = False
    """The answerer found no answer in the evidence and says so."""
    short: str = ""
    """The bare answer ``text`` leads with (a name, a date, a number), if any."""
    partial: str = ""
    """With ``abstained``: what the evidence did say (cited like ``text``)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The validator's finding about a draft."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    retry: Literal["answer", "refine"] = "answer"
    """Where a failed draft should go: rewrite from the same evidence, or look for more."""


@runtime_checkable
class QueryAnalyzer(Protocol):
    def analyze(self, question: str, history: Sequence[BaseMessage], budget: Budget) -> QueryPlan:
        """Rewrite a follow-up into a standalone question and expand it into search queries."""
        ...


@runtime_checkable
class SourceSelector(Protocol):
    def select(self, question: str, sources: Sequence[Source], budget: Budget) -> Selection:
        """Choose the sources worth searching; never an unknown name."""
        ...


@runtime_checkable
class Grader(Protocol):
    def grade(
        self, question: str, sub_questions: Sequence[str], chunks: Sequence[RetrievedChunk], budget: Budget
    ) -> Grading:
        """Keep the relevant chunks and say which sub-questions they leave open."""
        ...


@runtime_checkable
class Refiner(Protocol):
    def refine(
        self,
        question: str,
        missing: Sequence[str],
        evidence: Sequence[RetrievedChunk],
        tried: Sequence[str],
        budget: Budget,
    ) -> list[str]:
        """New search queries for what is missing (none: nothing new to try)."""
        ...


@runtime_checkable
class Answerer(Protocol):
    def answer(
        self, question: str, evidence: Sequence[RetrievedChunk], feedback: Sequence[str], budget: Budget
    ) -> Draft:
        """Answer from the evidence with citations, or abstain; ``feedback`` lists a failed draft's problems."""
        ...


@runtime_checkable
class Validator(Protocol):
    def validate(self, question: str, draft: Draft, evidence: Sequence[RetrievedChunk], budget: Budget) -> Verdict:
        """Check citations, support and relevance of a draft."""
        ...


@dataclass(frozen=True, slots=True)
class Strategies:
    """One strategy per judgement step of the RAG graph."""

    analyzer: QueryAnalyzer
    selector: SourceSelector
    grader: Grader
    refiner: Refiner
    answerer: Answerer
    validator: Validator
    kind: str = "custom"
    """``heuristic``, ``llm`` or ``custom``: shown in traces and results."""


# -- shared text helpers -----------------------------------------------------------------------

CITATION = re.compile(r"\[(\d+)\]")
"""A citation marker ``[n]`` in an answer."""
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def citation_numbers(text: str) -> list[int]:
    """The ``[n]`` numbers in ``text``, in order of appearance."""
    return [int(n) for n in CITATION.findall(text)]


def term_weights(query: set[str], texts: Sequence[set[str]]) -> dict[str, float]:
    """Weight of each query term by its rarity among ``texts`` (a term every text has says little)."""
    df = Counter(t for ts in texts for t in ts & query)
    n = len(texts)
    return {t: math.log(1 + (n + 1) / (df.get(t, 0) + 0.5)) for t in query}


def weighted_overlap(
    query: set[str], texts: Sequence[set[str]], weights: dict[str, float] | None = None
) -> list[float]:
    """For each text, the weighted share of ``query``'s terms it holds (weights: :func:`term_weights`
    over ``texts`` unless given)."""
    if not query or not texts:
        return [0.0] * len(texts)
    weight = weights if weights is not None else term_weights(query, texts)
    total = sum(weight.get(t, 0.0) for t in query) or 1.0
    return [sum(weight.get(t, 0.0) for t in ts & query) / total for ts in texts]


def lexical_support(claim: str, sources: Sequence[str]) -> float:
    """Share of the claim's content words found in the cited texts (0 to 1; 1 for an empty claim)."""
    claim_terms = terms(CITATION.sub(" ", claim))
    if not claim_terms:
        return 1.0
    found: set[str] = set()
    for text in sources:
        found |= terms(text) & claim_terms
    return len(found) / len(claim_terms)


def citation_verdict(draft: Draft, evidence: Sequence[RetrievedChunk]) -> Verdict | None:
    """The checks every validator makes first, in code: an abstention passes, and a draft whose
    citations do not resolve fails (rewrite it). ``None``: go on and judge the claims."""
    if draft.abstained:
        return Verdict(ok=True)
    problems = check_citations(draft, {c.id for c in evidence})
    return Verdict(ok=False, problems=problems, retry="answer") if problems else None


def check_citations(draft: Draft, retrieved_ids: set[str]) -> list[str]:
    """Problems with a draft's citations: numbers without a cited chunk, chunks the run never
    retrieved, or an answer that cites nothing. Empty when all is well."""
    if draft.abstained:
        return []
    problems = []
    numbers = citation_numbers(draft.text)
    if not numbers:
        problems.append("the answer cites no source; cite each claim with [n]")
    bad = sorted({n for n in numbers if not 1 <= n <= len(draft.citations)})
    if bad:
        problems.append(f"citation(s) {', '.join(f'[{n}]' for n in bad)} point at no passage")
    unknown = [cid for cid in draft.citations if cid not in retrieved_ids]
    if unknown:
        problems.append(f"{len(unknown)} citation(s) point at chunks this run did not retrieve")
    return problems


def cited_sentences(text: str) -> list[tuple[str, list[int]]]:
    """Sentences of an answer with the citation numbers each carries."""
    return [(s, citation_numbers(s)) for s in _SENTENCE.split(text) if s.strip()]
