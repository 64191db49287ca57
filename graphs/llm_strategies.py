"""Strategies backed by a chat model. Structured answers are validated and repaired once (see
:meth:`graphs.llm.ModelClient.structured`); when that fails, each falls back to its heuristic twin,
and the trace says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from graphs.budget import Budget
from graphs.heuristic import (
    HeuristicAnalyzer,
    HeuristicGrader,
    HeuristicRefiner,
    HeuristicValidator,
)
from graphs.llm import ModelClient
from graphs.strategies import (
    CITATION,
    Draft,
    Grading,
    QueryPlan,
    Selection,
    Strategies,
    Verdict,
    citation_numbers,
    citation_verdict,
)
from tools.retrieval import RetrievedChunk, Retriever
from tools.store import Source

__all__ = [
    "LLMAnalyzer",
    "LLMAnswerer",
    "LLMGrader",
    "LLMRefiner",
    "LLMSelector",
    "LLMValidator",
    "llm_strategies",
]

ABSTAIN = "INSUFFICIENT"
_PASSAGE_CHARS = 1500


def _history_text(history: Sequence[BaseMessage], turns: int = 6) -> str:
    lines = [f"{m.type}: {m.text if isinstance(m.text, str) else m.content}" for m in history[-turns:]]
    return "\n".join(lines)


def _passages(chunks: Sequence[RetrievedChunk]) -> str:
    return "\n\n".join(
        f"[{i}] ({c.source}: {c.title or c.doc_id})\n{c.text[:_PASSAGE_CHARS]}" for i, c in enumerate(chunks, 1)
    )


class _Plan(BaseModel):
    standalone: str = Field(description="the question rewritten to stand alone, follow-ups resolved")
    queries: list[str] = Field(default_factory=list, description="2-4 differently worded search queries")
    sub_questions: list[str] = Field(
        default_factory=list, description="for a multi-hop question, the simpler questions it depends on"
    )
    hypothetical_passage: str = Field(default="", description="a short passage that would answer the question")


class LLMAnalyzer:
    """Rewrites follow-ups, writes multi-queries, decomposes multi-hop questions, adds a HyDE passage."""

    def __init__(self, client: ModelClient, fallback: HeuristicAnalyzer, *, max_queries: int = 4):
        self.client = client
        self.fallback = fallback
        self.max_queries = max_queries

    def analyze(self, question: str, history: Sequence[BaseMessage], budget: Budget) -> QueryPlan:
        prompt = [
            SystemMessage(
                "You prepare a question for search over a document collection. Rewrite it to stand alone "
                "using the conversation, write search queries, split a multi-hop question into the "
                "sub-questions it depends on, and write a short hypothetical passage that answers it."
            ),
            HumanMessage(f"Conversation so far:\n{_history_text(history) or '(none)'}\n\nQuestion: {question}"),
        ]
        plan = self.client.structured(prompt, _Plan, budget, tags=["analyze"])
        if plan is None or not plan.standalone.strip():
            fallback = self.fallback.analyze(question, history, budget)
            return QueryPlan(
                fallback.standalone, fallback.queries, fallback.sub_questions, "model reply invalid: heuristic"
            )
        queries = [plan.standalone, *plan.queries[: self.max_queries]]
        if plan.hypothetical_passage.strip():
            queries.append(plan.hypothetical_passage.strip())
        unique = list(dict.fromkeys(q.strip() for q in queries if q.strip()))
        subs = [s.strip() for s in plan.sub_questions if s.strip()] or [plan.standalone]
        return QueryPlan(plan.standalone.strip(), unique, subs, "model plan")


class _Choice(BaseModel):
    sources: list[str] = Field(description="names of the sources worth searching")


class LLMSelector:
    """Asks the model to pick sources by their descriptions; an unknown name is repaired once, then
    all sources are searched (never silently just one)."""

    def __init__(self, client: ModelClient):
        self.client = client

    def select(self, question: str, sources: Sequence[Source], budget: Budget) -> Selection:
        names = [s.name for s in sources]
        if len(names) <= 1:
            return Selection(names, "one source")
        listing = "\n".join(f"- {s.name}: {s.description or '(no description)'}" for s in sources)
        prompt: list[BaseMessage] = [
            SystemMessage("Choose which sources to search for the question. Use only the names listed."),
            HumanMessage(f"Sources:\n{listing}\n\nQuestion: {question}"),
        ]
        for attempt in range(2):
            choice = self.client.structured(prompt, _Choice, budget, tags=["select_sources"])
            if choice is None:
                break
            chosen = list(dict.fromkeys(choice.sources))
            unknown = [n for n in chosen if n not in names]
            if chosen and not unknown:
                return Selection(chosen, "model choice" + (" (repaired)" if attempt else ""))
            problem = f"unknown source(s) {unknown}" if unknown else "no source chosen"
            prompt = [*prompt, HumanMessage(f"Invalid: {problem}. Choose from: {', '.join(names)}.")]
        return Selection(names, "model choice invalid after one repair: searching all sources", fallback=True)


class _Relevance(BaseModel):
    relevant: list[int] = Field(description="numbers of the passages that help answer the question")
    missing: list[str] = Field(default_factory=list, description="sub-questions the relevant passages do not answer")


class LLMGrader:
    """The model marks relevant passages and names the sub-questions still unanswered."""

    def __init__(self, client: ModelClient, fallback: HeuristicGrader, *, max_passages: int = 12):
        self.client = client
        self.fallback = fallback
        self.max_passages = max_passages

    def grade(
        self, question: str, sub_questions: Sequence[str], chunks: Sequence[RetrievedChunk], budget: Budget
    ) -> Grading:
        if not chunks:
            return Grading([], list(sub_questions), "nothing retrieved")
        shown = list(chunks[: self.max_passages])
        prompt = [
            SystemMessage("Grade passages for a question: which are relevant, and which sub-questions remain open."),
            HumanMessage(
                f"Question: {question}\nSub-questions:\n"
                + "\n".join(f"- {s}" for s in sub_questions)
                + f"\n\nPassages:\n{_passages(shown)}"
            ),
        ]
        verdict = self.client.structured(prompt, _Relevance, budget, tags=["grade"])
        if verdict is None:
            grading = self.fallback.grade(question, sub_questions, chunks, budget)
            return Grading(grading.kept, grading.missing, "model reply invalid: lexical grading")
        kept = [shown[n - 1] for n in dict.fromkeys(verdict.relevant) if 1 <= n <= len(shown)]
        missing = [m.strip() for m in verdict.missing if m.strip()]
        if not kept and not missing:
            missing = list(sub_questions)
        return Grading(kept, missing, f"model kept {len(kept)} of {len(shown)}")


class _Queries(BaseModel):
    queries: list[str] = Field(description="new search queries for the missing information")


class LLMRefiner:
    def __init__(self, client: ModelClient, fallback: HeuristicRefiner, *, max_queries: int = 3):
        self.client = client
        self.fallback = fallback
        self.max_queries = max_queries

    def refine(
        self,
        question: str,
        missing: Sequence[str],
        evidence: Sequence[RetrievedChunk],
        tried: Sequence[str],
        budget: Budget,
    ) -> list[str]:
        prompt = [
            SystemMessage(
                "Search found part of what a question needs. Write new search queries for what is missing, "
                "using names and facts from the evidence found so far (the next hop)."
            ),
            HumanMessage(
                f"Question: {question}\nMissing:\n"
                + "\n".join(f"- {m}" for m in missing)
                + "\nAlready tried:\n"
                + "\n".join(f"- {t}" for t in tried)
                + f"\n\nEvidence so far:\n{_passages(evidence[:5])}"
            ),
        ]
        reply = self.client.structured(prompt, _Queries, budget, tags=["refine"])
        if reply is None:
            return self.fallback.refine(question, missing, evidence, tried, budget)
        done = {t.lower() for t in tried}
        fresh = [q.strip() for q in reply.queries if q.strip() and q.strip().lower() not in done]
        return list(dict.fromkeys(fresh))[: self.max_queries]


class LLMAnswerer:
    """Answers from numbered passages with ``[n]`` citations; renumbers them in order of use."""

    def __init__(self, client: ModelClient, *, max_passages: int = 8):
        self.client = client
        self.max_passages = max_passages

    def answer(
        self, question: str, evidence: Sequence[RetrievedChunk], feedback: Sequence[str], budget: Budget
    ) -> Draft:
        shown = list(evidence[: self.max_passages])
        if not shown:
            return Draft(f"I found nothing in the sources that answers {question.strip()!r}.", [], abstained=True)
        instructions = (
            "Answer the question using only the numbered passages. Cite every claim with the passage "
            f"number in brackets, like [1]. If the passages do not answer it, reply exactly {ABSTAIN}."
        )
        if feedback:
            instructions += "\nA previous draft was rejected: " + "; ".join(feedback) + ". Fix that."
        prompt = [SystemMessage(instructions), HumanMessage(f"Passages:\n{_passages(shown)}\n\nQuestion: {question}")]
        reply = self.client.invoke(prompt, budget, tags=["answer"])
        text = (reply.text if isinstance(reply.text, str) else str(reply.content)).strip()
        if not text or text.strip(". ").upper() == ABSTAIN:
            return Draft(f"The sources do not answer {question.strip()!r}.", [], abstained=True)
        return renumber(text, [c.id for c in shown])


def renumber(text: str, shown_ids: Sequence[str]) -> Draft:
    """Map the prompt's passage numbers to citations numbered by first use. A number with no
    passage is kept as-is past the end of the list, so validation reports it."""
    order: dict[int, int] = {}
    for n in citation_numbers(text):
        if 1 <= n <= len(shown_ids):
            order.setdefault(n, len(order) + 1)
    citations = [shown_ids[n - 1] for n in order]

    def new_number(match: re.Match[str]) -> str:
        n = int(match.group(1))
        return f"[{order[n]}]" if n in order else f"[{len(citations) + n}]"

    return Draft(CITATION.sub(new_number, text), citations)


class _Judgement(BaseModel):
    supported: bool = Field(description="every claim is supported by the passage it cites")
    addresses_question: bool = Field(description="the answer answers the question asked")
    problems: list[str] = Field(default_factory=list)


class LLMValidator:
    """Citation ids checked in code; support and relevance judged by the model (lexically if its
    reply is invalid)."""

    def __init__(self, client: ModelClient, fallback: HeuristicValidator):
        self.client = client
        self.fallback = fallback

    def validate(self, question: str, draft: Draft, evidence: Sequence[RetrievedChunk], budget: Budget) -> Verdict:
        if (verdict := citation_verdict(draft, evidence)) is not None:
            return verdict
        by_id = {c.id: c for c in evidence}
        cited = [by_id[cid] for cid in draft.citations]
        prompt = [
            SystemMessage("Check an answer against the passages it cites."),
            HumanMessage(f"Question: {question}\n\nAnswer: {draft.text}\n\nCited passages:\n{_passages(cited)}"),
        ]
        judgement = self.client.structured(prompt, _Judgement, budget, tags=["validate"])
        if judgement is None:
            return self.fallback.validate(question, draft, evidence, budget)
        if not judgement.addresses_question:
            return Verdict(False, judgement.problems or ["the answer does not address the question"], "refine")
        if not judgement.supported:
            return Verdict(False, judgement.problems or ["a claim is not supported by its citation"], "answer")
        return Verdict(ok=True)


def llm_strategies(client: ModelClient, retriever: Retriever) -> Strategies:
    """The model-backed strategy set (heuristic fallbacks inside)."""
    return Strategies(
        analyzer=LLMAnalyzer(client, HeuristicAnalyzer(retriever=None)),
        selector=LLMSelector(client),
        grader=LLMGrader(client, HeuristicGrader()),
        refiner=LLMRefiner(client, HeuristicRefiner()),
        answerer=LLMAnswerer(client),
        validator=LLMValidator(client, HeuristicValidator()),
        kind="llm",
    )
