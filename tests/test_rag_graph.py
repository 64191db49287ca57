"""The agentic RAG graph, branch by branch: heuristic strategies, and a scripted model for every
LLM path (expansion, routing repair, grading loop, refine, validation retry, abstention, budgets,
errors, threads)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agents.rag_agent import RagAgent
from agents.testing import FakeEmbeddings, ScriptedChatModel, ScriptExhaustedError, scripted
from graphs.budget import Limits
from graphs.heuristic import HeuristicRefiner, heuristic_strategies
from graphs.llm import RetryPolicy
from graphs.rag import build_rag_graph
from graphs.strategies import Selection, Strategies
from tests.conftest import open_store
from tools.ingest import Ingestor
from tools.ingest.loaders import Document
from tools.retrieval import RetrievedChunk, Retriever
from tools.store import QdrantStore, VectorStore

SPACE = [
    ("apollo", "Apollo 11", "Apollo 11 landed on the Moon on 20 July 1969. Neil Armstrong was its commander."),
    ("saturn", "Saturn V", "The Saturn V rocket launched Apollo 11 from the Kennedy Space Center."),
    ("armstrong", "Neil Armstrong", "Neil Armstrong was born in Wapakoneta, Ohio, in 1930 and became a test pilot."),
]
BEES = [
    ("waggle", "Waggle dance", "The waggle dance of honeybees tells other workers the direction and distance of food."),
    ("queen", "Queen bee", "A queen bee lays up to 2,000 eggs a day in spring."),
]


def _docs(rows: list[tuple[str, str, str]]) -> list[Document]:
    return [Document(doc_id=i, text=text, title=title, path=f"/corpus/{i}.txt") for i, title, text in rows]


@pytest.fixture
def retriever() -> Iterator[Retriever]:
    yield from _retriever(QdrantStore(":memory:"))


def _retriever(store: VectorStore) -> Iterator[Retriever]:
    embeddings = FakeEmbeddings()
    ingestor = Ingestor(store, embeddings)
    ingestor.ingest_documents(_docs(SPACE), "space", description="Space flight: Apollo missions, rockets, astronauts")
    ingestor.ingest_documents(_docs(BEES), "bees", description="Honeybees: the waggle dance of workers, queens, hives")
    yield Retriever(store=store, embeddings=embeddings, k=5)
    store.close()


def agent_with(retriever: Retriever, model: ScriptedChatModel, **limits: Any) -> RagAgent:
    retry = RetryPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.05, jitter=0.0)
    return RagAgent(retriever, chat_model=model, limits=Limits(**limits), retry=retry)


def nodes(result: Any) -> list[str]:
    return [s["node"] for s in result.steps]


def plan(standalone: str, queries: list[str] | None = None, subs: list[str] | None = None) -> dict[str, Any]:
    return {"standalone": standalone, "queries": queries or [], "sub_questions": subs or [], "hypothetical_passage": ""}


OK = {"supported": True, "addresses_question": True, "problems": []}


# -- structure -----------------------------------------------------------------------------------


def test_graph_structure_snapshot() -> None:
    edges = {(e.source, e.target, e.conditional) for e in build_rag_graph().get_graph().edges}
    assert edges == {
        ("__start__", "analyze", False),
        ("analyze", "select_sources", True),
        ("analyze", "finish", True),
        ("select_sources", "retrieve", True),
        ("select_sources", "finish", True),
        ("retrieve", "grade", False),
        ("grade", "refine", True),
        ("grade", "answer", True),
        ("grade", "finish", True),
        ("refine", "retrieve", True),
        ("refine", "answer", True),
        ("refine", "finish", True),
        ("answer", "validate", True),
        ("answer", "finish", True),
        ("validate", "answer", True),
        ("validate", "refine", True),
        ("validate", "finish", True),
        ("finish", "__end__", False),
    }


# -- heuristic strategies ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["disk", "edge"])
def test_concurrent_branches_on_every_backend(kind: str, tmp_path: Path) -> None:
    """Send branches search concurrently: every query x 2 sources on each store backend."""
    for retriever in _retriever(open_store(kind, tmp_path)):
        agent = RagAgent(retriever, strategies=_all_sources(heuristic_strategies(retriever)))
        result = agent.invoke("When did Apollo 11 land on the Moon?")
        first_grade = next(i for i, s in enumerate(result.steps) if s["node"] == "grade")
        retrieves = [s for s in result.steps[:first_grade] if s["node"] == "retrieve"]  # the first round
        queries = result.steps[0]["queries"]
        assert len(queries) >= 2
        assert len(retrieves) == 2 * len(queries)
        assert {s["source"] for s in retrieves} == {"space", "bees"}
        assert all(s["chunks"] > 0 for s in retrieves)
        assert result.exit_reason == "answered"
        assert "20 July 1969" in result.answer


def _all_sources(strategies: Strategies) -> Strategies:
    class Everything:
        def select(self, question: str, sources: Any, budget: Any) -> Selection:
            return Selection([s.name for s in sources], "all")

    return dataclasses.replace(strategies, selector=Everything())


def test_heuristic_answers_with_citations_and_routes_by_description(retriever: Retriever) -> None:
    agent = RagAgent(retriever)
    result = agent.invoke("What does the waggle dance of honeybees tell other workers?")
    assert result.exit_reason == "answered"
    assert result.strategies == "heuristic"
    assert "direction and distance" in result.answer
    assert "[1]" in result.answer
    assert result.citations[0].source == "bees"
    assert result.citations[0].title == "Waggle dance"
    select = next(s for s in result.steps if s["node"] == "select_sources")
    assert select["sources"] == ["bees"]
    assert nodes(result)[:2] == ["analyze", "select_sources"]
    assert nodes(result)[-3:] == ["answer", "validate", "finish"]
    assert result.usage["model_calls"] == 0


def test_heuristic_abstains_when_nothing_matches(retriever: Retriever) -> None:
    result = RagAgent(retriever).invoke("Zygomorphic quasars xylophone?")
    assert result.exit_reason == "abstained"
    assert result.citations == []
    assert "nothing in the sources" in result.answer


def test_stream_emits_step_events_then_the_result(retriever: Retriever) -> None:
    events = list(RagAgent(retriever).stream("When did Apollo 11 land on the Moon?"))
    steps = [e.data for e in events if e.kind == "step"]
    assert {"event": "step_start", "node": "analyze"} in steps
    assert any(e.get("event") == "retrieved" and e["chunks"] > 0 for e in steps)
    assert events[-1].kind == "result"
    assert events[-1].result is not None
    assert "1969" in events[-1].result.answer


def test_empty_question_is_a_clear_error(retriever: Retriever) -> None:
    with pytest.raises(ValueError, match="question is empty"):
        RagAgent(retriever).invoke("  ")


def test_no_sources_ends_with_error_that_says_what_to_do() -> None:
    store = QdrantStore(":memory:")
    result = RagAgent(Retriever(store=store, embeddings=FakeEmbeddings())).invoke("anything?")
    assert result.exit_reason == "error"
    assert "arag ingest" in result.answer


def test_heuristic_refiner_hops_through_entities_of_the_evidence() -> None:
    chunk = RetrievedChunk("c1", 1.0, "space", "saturn", "Saturn V", "The Saturn V was designed by Wernher von Braun.")
    queries = HeuristicRefiner().refine("Where was the designer of the Saturn V born?", [], [chunk], [], None)  # type: ignore[arg-type]
    assert any("Wernher von Braun" in q for q in queries)
    assert all("born" in q for q in queries)


def test_heuristic_refiner_takes_no_hop_for_a_claim() -> None:
    """A claim asks for no fact: no bridge to follow, its first round is its ranking."""
    chunk = RetrievedChunk("c1", 1.0, "space", "saturn", "Saturn V", "The Saturn V was designed by Wernher von Braun.")
    claim = "The Saturn V was designed by a German engineer."
    assert HeuristicRefiner().refine(claim, [claim], [chunk], [], None) == []  # type: ignore[arg-type]
    question = "Which German engineer designed the Saturn V?"
    assert HeuristicRefiner().refine(question, [question], [chunk], [], None)  # type: ignore[arg-type]


def test_heuristic_follow_up_borrows_the_previous_subject(retriever: Retriever) -> None:
    agent = RagAgent(retriever, checkpointer=InMemorySaver())
    first = agent.invoke("When did Apollo 11 land on the Moon?", thread_id="t")
    follow = agent.invoke("Who was its commander?", thread_id="t")
    assert first.exit_reason == follow.exit_reason == "answered"
    assert "Apollo" in follow.standalone_question
    assert "Armstrong" in follow.answer
    other = agent.invoke("Who was its commander?", thread_id="fresh")
    assert other.standalone_question == "Who was its commander?"


# -- scripted model: every branch ----------------------------------------------------------------


def test_llm_full_loop_expansion_repair_refine_and_validation_retry(retriever: Retriever) -> None:
    model = scripted(
        plan(
            "Where was the commander of Apollo 11 born?",
            ["Apollo 11 commander"],
            ["Who commanded Apollo 11?", "Where was he born?"],
        ),
        {"sources": ["astronauts"]},  # unknown source: repaired once
        {"sources": ["space"]},
        {"relevant": [1], "missing": ["Where was he born?"]},  # grade round 1: a hop is missing
        {"queries": ["Neil Armstrong birthplace"]},  # refine
        {"relevant": [1, 2], "missing": []},  # grade round 2: covered
        "Armstrong was born in Wapakoneta [2].",  # answer 1
        {"supported": False, "addresses_question": True, "problems": ["the claim lacks the commander"]},
        "Neil Armstrong commanded Apollo 11 [1] and was born in Wapakoneta, Ohio [2].",  # answer 2
        OK,
    )
    result = agent_with(retriever, model).invoke("Where was the commander of Apollo 11 born?")
    assert model.remaining == 0
    assert result.exit_reason == "answered", result.steps
    assert result.strategies == "llm"
    assert [c.number for c in result.citations] == [1, 2]
    assert "Wapakoneta" in result.answer
    assert result.usage["model_calls"] == 10
    assert nodes(result).count("grade") == 2
    assert nodes(result).count("answer") == 2
    select = next(s for s in result.steps if s["node"] == "select_sources")
    assert select["sources"] == ["space"]
    assert "repaired" in select["detail"]
    analyze = result.steps[0]
    assert "Apollo 11 commander" in analyze["queries"]
    # The repair prompt told the model what was wrong.
    assert "unknown source" in str(model.prompts[2][-2].content)


def test_llm_routing_falls_back_to_all_sources_after_a_failed_repair(retriever: Retriever) -> None:
    hyde = {**plan("What does the waggle dance tell?"), "hypothetical_passage": "The dance encodes distance."}
    model = scripted(
        hyde,
        {"sources": ["nope"]},
        {"sources": []},
        {"relevant": [1], "missing": []},
        "It tells direction and distance [1].",
        OK,
    )
    result = agent_with(retriever, model).invoke("What does the waggle dance tell?")
    select = next(s for s in result.steps if s["node"] == "select_sources")
    assert sorted(select["sources"]) == ["bees", "space"]
    assert "searching all sources" in select["detail"]
    assert result.steps[0]["queries"][-1] == "The dance encodes distance."  # HyDE passage searched too
    assert result.exit_reason == "answered"


def test_invalid_json_is_repaired_once_then_falls_back_to_heuristic(retriever: Retriever) -> None:
    model = scripted(
        "not json at all",
        '{"standalone": 5',  # still invalid: heuristic analysis
        {"sources": ["space"]},
        {"relevant": [1], "missing": []},
        "Apollo 11 landed on 20 July 1969 [1].",
        OK,
    )
    result = agent_with(retriever, model).invoke("When did Apollo 11 land?")
    assert result.steps[0]["detail"] == "model reply invalid: heuristic"
    assert result.exit_reason == "answered"


def test_abstention_from_the_model(retriever: Retriever) -> None:
    model = scripted(
        plan("Who painted the Mona Lisa?"), {"sources": ["space"]}, {"relevant": [1], "missing": []}, "INSUFFICIENT"
    )
    result = agent_with(retriever, model, max_iterations=1).invoke("Who painted the Mona Lisa?")
    assert result.exit_reason == "abstained"
    assert result.citations == []
    assert "do not answer" in result.answer


def test_citation_of_a_passage_that_does_not_exist_is_corrected(retriever: Retriever) -> None:
    model = scripted(
        plan("When did Apollo 11 land?"),
        {"sources": ["space"]},
        {"relevant": [1], "missing": []},
        "It landed in 1969 [7].",  # no passage 7: validation fails without asking the model
        "It landed on 20 July 1969 [1].",
        OK,
    )
    result = agent_with(retriever, model).invoke("When did Apollo 11 land?")
    validations = [s for s in result.steps if s["node"] == "validate"]
    assert "point at no passage" in validations[0]["detail"]
    assert result.exit_reason == "answered"
    assert model.remaining == 0


def test_validation_that_keeps_failing_ends_at_max_iterations_with_the_draft(retriever: Retriever) -> None:
    bad = {"supported": False, "addresses_question": True, "problems": ["unsupported"]}
    model = scripted(
        plan("When did Apollo 11 land?"),
        {"sources": ["space"]},
        {"relevant": [1], "missing": []},
        "It landed in 1970 [1].",
        bad,
        "It landed in 1971 [1].",
        bad,
    )
    result = agent_with(retriever, model, max_answer_attempts=2).invoke("When did Apollo 11 land?")
    assert result.exit_reason == "max_iterations"
    assert result.partial_answer == "It landed in 1971 [1]."
    assert "could not give an answer I can support" in result.answer
    assert result.citations == []


def test_off_topic_answer_goes_back_to_refine(retriever: Retriever) -> None:
    model = scripted(
        plan("When did Apollo 11 land?"),
        {"sources": ["space"]},
        {"relevant": [1], "missing": []},
        "The Saturn V launched it [1].",
        {"supported": True, "addresses_question": False, "problems": ["does not say when"]},
        {"queries": ["Apollo 11 landing date"]},
        {"relevant": [1], "missing": []},
        "It landed on 20 July 1969 [1].",
        OK,
    )
    result = agent_with(retriever, model).invoke("When did Apollo 11 land?")
    assert nodes(result).count("refine") == 1
    assert result.exit_reason == "answered"


def test_grading_loop_stops_at_max_iterations_and_answers_with_what_it_has(retriever: Retriever) -> None:
    missing = {"relevant": [1], "missing": ["something never found"]}
    model = scripted(
        plan("Q?"),
        {"sources": ["space"]},
        missing,
        {"queries": ["second try"]},
        missing,  # iteration 2 = max: no more refining
        "Partial answer [1].",
        OK,
    )
    result = agent_with(retriever, model, max_iterations=2).invoke("Q?")
    assert nodes(result).count("grade") == 2
    assert result.exit_reason == "answered"


@pytest.mark.parametrize(
    ("limits", "detail"),
    [
        ({"max_model_calls": 2}, "model calls"),
        ({"max_tokens": 10}, "tokens"),
    ],
)
def test_budgets_end_the_run_with_reason(retriever: Retriever, limits: dict[str, Any], detail: str) -> None:
    model = scripted(plan("When did Apollo 11 land?"), {"sources": ["space"]}, {"relevant": [1], "missing": []})
    result = agent_with(retriever, model, **limits).invoke("When did Apollo 11 land?")
    assert result.exit_reason == "budget"
    assert detail in (result.error or "")
    assert nodes(result)[-1] == "finish"


def test_deadline_ends_the_run_with_the_partial_answer(retriever: Retriever, monkeypatch: pytest.MonkeyPatch) -> None:
    import graphs.budget

    clock = [0.0]
    monkeypatch.setattr(graphs.budget.time, "monotonic", lambda: clock[0])

    class SlowValidator(ScriptedChatModel):
        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
            result = super()._generate(messages, stop, run_manager, **kw)
            if self.i == 4:  # after the answer: the clock runs out
                clock[0] = 1000.0
            return result

    model = SlowValidator(
        responses=[plan("When?"), {"sources": ["space"]}, {"relevant": [1], "missing": []}, "In 1969 [1]."]
    )
    result = agent_with(retriever, model, deadline_s=60).invoke("When?")
    assert result.exit_reason == "budget"
    assert "deadline" in (result.error or "")
    assert result.partial_answer == "In 1969 [1]."
    assert result.answer == "In 1969 [1]."


def test_model_failure_ends_with_error_and_keeps_the_draft(retriever: Retriever) -> None:
    model = scripted(
        plan("When?"),
        {"sources": ["space"]},
        {"relevant": [1], "missing": []},
        "In 1969 [1].",
        RuntimeError("validator crashed"),
    )
    result = agent_with(retriever, model).invoke("When?")
    assert result.exit_reason == "error"
    assert "validator crashed" in (result.error or "")
    assert result.partial_answer == "In 1969 [1]."


def test_script_running_out_is_an_error_not_a_hang(retriever: Retriever) -> None:
    result = agent_with(retriever, scripted()).invoke("When?")
    assert result.exit_reason == "error"
    assert ScriptExhaustedError.__name__ in (result.error or "")


def test_llm_thread_history_reaches_the_analyzer(retriever: Retriever) -> None:
    model = scripted(
        plan("When did Apollo 11 land?"),
        {"sources": ["space"]},
        {"relevant": [1], "missing": []},
        "On 20 July 1969 [1].",
        OK,
        plan("Who commanded Apollo 11?"),
        {"sources": ["space"]},
        {"relevant": [1], "missing": []},
        "Neil Armstrong [1].",
        OK,
    )
    agent = RagAgent(retriever, chat_model=model, checkpointer=InMemorySaver())
    agent.invoke("When did Apollo 11 land?", thread_id="t1")
    second = agent.invoke("Who commanded it?", thread_id="t1")
    analyze_prompt = str(model.prompts[5][1].content)
    assert "When did Apollo 11 land?" in analyze_prompt
    assert "On 20 July 1969" in analyze_prompt
    assert second.standalone_question == "Who commanded Apollo 11?"
    assert second.answer == "Neil Armstrong [1]."
    # Nothing of the first turn leaks into the second's steps or citations.
    assert nodes(second)[0] == "analyze"
    assert nodes(second).count("finish") == 1


def test_usage_counts_tokens_from_response_metadata(retriever: Retriever) -> None:
    from langchain_core.messages import AIMessage

    usage = {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120}
    model = scripted(
        AIMessage(content='{"standalone": "When?", "queries": []}', usage_metadata=usage),
        {"sources": ["space"]},
        {"relevant": [1], "missing": []},
        AIMessage(content="In 1969 [1].", usage_metadata=usage),
        OK,
    )
    result = agent_with(retriever, model).invoke("When?")
    assert result.usage["model_calls"] == 5
    assert result.usage["input_tokens"] >= 200
    assert result.usage["estimated"] is True  # three replies carried no usage


# -- which failures are "no evidence" and which end the run ---------------------------------------


def test_a_configuration_error_ends_the_run_with_its_message_not_an_abstention(retriever: Retriever) -> None:
    other = Retriever(store=retriever.store, embeddings=FakeEmbeddings(model_name="other-model"))
    result = RagAgent(other).invoke("When did Apollo 11 land on the Moon?")
    assert result.exit_reason == "error"
    assert "embedded with 'fake-hash-64' but the retriever uses 'other-model'" in (result.error or "")
    assert "other-model" in result.answer
    assert nodes(result) == ["analyze", "finish"]  # the first search (query expansion) failed: stop there


def test_a_store_that_fails_in_transit_is_no_evidence_and_the_other_sources_go_on(
    retriever: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = retriever.store.search

    def flaky(name: str, **kwargs: Any) -> Any:
        if name == "bees":
            raise ConnectionError("qdrant at 10.0.0.5:6333 refused the connection")
        return real(name, **kwargs)

    monkeypatch.setattr(retriever.store, "search", flaky)
    result = RagAgent(retriever).invoke("When did Apollo 11 land on the Moon?")
    assert result.exit_reason == "answered"
    failed = [s for s in result.steps if s["node"] == "retrieve" and "failed" in s["detail"]]
    assert failed
    assert all(s["source"] == "bees" and "refused the connection" in s["detail"] for s in failed)
