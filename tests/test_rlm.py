"""The recursive long-context graph: the offline plan, every tool and branch with a scripted root
model, recursion, budgets (iterations, depth, sub-calls, tokens), failures, and concurrency."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from agents.rlm_agent import RlmAgent, RlmResult
from agents.testing import ScriptedChatModel, function_model, scripted
from graphs.broker import Broker, RlmLimits
from graphs.llm import RetryPolicy
from graphs.rlm import RlmContext, build_rlm_graph, prepare_run
from graphs.rlm_policies import ExtractiveReader, HeuristicRoot
from tools.context import ContextStore

FILLER = (
    "Startups grow by making something people want. Most founders underestimate how long it takes. "
    "Good ideas often look like bad ideas at first, which is why so few people pursue them.\n\n"
)
NEEDLE = "The special magic number for walrus is 7251904."
QUESTION = "What is the special magic number for walrus?"
FAST = RetryPolicy(max_attempts=1, initial_wait=0.01, max_wait=0.01, jitter=0.0)


def haystack(chars: int, depth: float = 0.5, needle: str = NEEDLE) -> str:
    text = (FILLER * (chars // len(FILLER) + 1))[:chars]
    at = text.rfind(". ", 0, int(chars * depth)) + 2 if depth > 0 else 0
    return text[:at] + needle + " " + text[at:]


def call(name: str, call_id: str | None = None, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id or f"{name}-{len(json.dumps(args))}", "type": "tool_call"}


def turn(*calls: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=list(calls))


def tool_replies(model: ScriptedChatModel, prompt: int) -> dict[str, str]:
    """The tool results the root model saw in its ``prompt``-th call, by tool-call id."""
    return {m.tool_call_id: str(m.content) for m in model.prompts[prompt] if isinstance(m, ToolMessage)}


def nones(messages: list[BaseMessage]) -> str:
    return "NONE"


def agent(root: Any, sub: Any = None, **limits: Any) -> RlmAgent:
    return RlmAgent(root, sub_model=sub or function_model(nones), limits=RlmLimits(**limits), retry=FAST)


# -- structure and the offline plan ------------------------------------------------------------


def test_graph_structure_snapshot() -> None:
    edges = {(e.source, e.target, e.conditional) for e in build_rlm_graph().get_graph().edges}
    assert edges == {
        ("__start__", "root", False),
        ("root", "tools", True),
        ("root", "root", True),
        ("root", "finish", True),
        ("tools", "map_chunk", True),
        ("tools", "root", True),
        ("tools", "finish", True),
        ("map_chunk", "collect", False),
        ("collect", "tools", True),
        ("collect", "root", True),
        ("finish", "__end__", False),
    }


@pytest.mark.parametrize("depth", [0.0, 0.37, 1.0])
def test_offline_plan_finds_the_needle(depth: float) -> None:
    result = RlmAgent(limits=RlmLimits(sub_context_chars=5_000)).invoke(QUESTION, context=haystack(60_000, depth))
    assert result.exit_reason == "answered"
    assert "7251904" in result.answer
    assert result.strategies == "heuristic"
    kinds = [n["kind"] for n in result.trace]
    assert kinds.count("map") >= 12
    assert "reduce" in kinds
    assert result.usage["sub_calls"] == kinds.count("map") + kinds.count("reduce")
    assert result.usage["model_calls"] == 0


def test_offline_plan_recurses_on_pieces_too_long_for_one_sub_call() -> None:
    limits = RlmLimits(sub_context_chars=2_000, max_depth=2)
    agent = RlmAgent(limits=limits)
    agent_root = HeuristicRoot(limits, fanout=4)
    broker = Broker(limits)
    ctx = RlmContext(store=ContextStore(), broker=broker, root=agent_root, reader=ExtractiveReader())
    info = ctx.store.put(haystack(40_000, 0.8))
    start, config = prepare_run(ctx, QUESTION, info)
    final = agent.graph.invoke(start, config, context=ctx)
    assert "7251904" in final["answer"]["content"]
    runs = [n for n in broker.trace if n["kind"] == "run"]
    assert {r["depth"] for r in runs} == {0, 1, 2}  # 40k -> 4 pieces of 10k -> 4 of 2.5k -> 2k chunks
    assert all(r["exit_reason"] in ("answered", "abstained") for r in runs)
    assert len(ctx.store) == 1  # sub-run contexts are released


def test_offline_abstains_when_nothing_matches() -> None:
    result = RlmAgent(limits=RlmLimits(sub_context_chars=5_000)).invoke(
        "What is the special magic number for walrus?", context=FILLER * 100
    )
    assert result.exit_reason == "abstained"
    assert "nothing in the context matches" in result.answer
    assert result.partial_answer == ""


def test_context_text_never_enters_state_or_checkpoints() -> None:
    saver = InMemorySaver()
    graph = build_rlm_graph(checkpointer=saver)
    limits = RlmLimits(sub_context_chars=5_000)
    ctx = RlmContext(store=ContextStore(), broker=Broker(limits), root=HeuristicRoot(limits), reader=ExtractiveReader())
    secret = "Zanzibar-specific filler sentence that only the context holds. " * 400
    info = ctx.store.put(secret + NEEDLE)
    start, config = prepare_run(ctx, QUESTION, info)
    thread: Any = {**config, "configurable": {"thread_id": "t"}}
    final = graph.invoke(start, thread, context=ctx)
    assert set(final) <= {"answer", "exit_reason", "error"}  # the output schema
    assert "7251904" in final["answer"]["content"]
    dumped = "".join(str(c.checkpoint) for c in saver.list({"configurable": {"thread_id": "t"}}))
    assert "Zanzibar" not in dumped
    assert graph.get_state(thread).values["handle"] == info.handle  # the state holds the handle only


def test_stream_reports_progress_then_the_result() -> None:
    events = list(RlmAgent(limits=RlmLimits(sub_context_chars=5_000)).stream(QUESTION, context=haystack(30_000)))
    kinds = [e.data.get("event") if e.kind != "result" else "result" for e in events]
    assert kinds[0] == "rlm_turn"
    assert kinds[-1] == "result"
    assert "rlm_map" in kinds
    assert kinds.count("sub_call") >= 6
    assert all((e.kind == "tool") == (e.data.get("event") == "rlm_tool") for e in events[:-1])
    result = events[-1].result
    assert isinstance(result, RlmResult)
    assert "7251904" in result.answer
    assert [s.get("event") for s in result.steps] == kinds[:-1]


def test_files_are_loaded_and_a_broken_one_is_reported(tmp_path: Any) -> None:
    (tmp_path / "a.txt").write_text(haystack(20_000, 0.5))
    (tmp_path / "b.md").write_text("# Notes\n\nNothing about numbers here.")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    result = RlmAgent(limits=RlmLimits(sub_context_chars=5_000)).invoke(QUESTION, context=[tmp_path])
    assert "7251904" in result.answer
    assert any("broken.pdf" in p for p in result.problems)


def test_bad_inputs_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="question is empty"):
        RlmAgent().invoke("  ", context="text")
    with pytest.raises(ValueError, match="context is empty"):
        RlmAgent().invoke("q?", context="")
    with pytest.raises(ValueError, match="no context"):
        RlmAgent().invoke("q?", context=[])
    with pytest.raises(ValueError, match="code mode needs a chat model"):
        RlmAgent(code_mode=True)
    with pytest.raises(ValueError, match="max_depth"):
        RlmLimits(max_depth=-1)


# -- every tool, driven by a scripted root model ---------------------------------------------


def test_every_tool_with_a_scripted_root() -> None:
    context = "alpha one.\n\nbeta two.\n\ngamma three.\n\n" + NEEDLE
    sub = function_model(lambda m: "7251904" if "7251904" in str(m[-1].content) else "NONE")
    root = scripted(
        turn(call("info", "i"), call("peek", "p", start=0, end=10), call("grep", "g", pattern=r"magic number for \w+")),
        turn(call("split", "s", strategy="chars", size=15), call("map", "m", instruction="the number?", buffer="nums")),
        turn(
            call("aggregate", "a1", buffer="nums", op="count"),
            call("aggregate", "a2", buffer="nums", op="set"),
            call("aggregate", "a3", buffer="nums", op="join"),
            call("aggregate", "a4", buffer="nums", op="argmax"),
            call("reduce", "r", buffer="nums", instruction="the number", into="final"),
        ),
        turn(call("submit", "sub", buffer="final")),
    )
    result = agent(
        root, sub=function_model(lambda m: "reduced 7251904" if "Notes" in str(m[-1].content) else sub.fn(m))
    ).invoke(QUESTION, context=context)
    assert result.exit_reason == "answered"
    assert result.answer == "reduced 7251904"
    first = root.prompts[0]
    assert NEEDLE not in "".join(str(m.content) for m in first)  # the root sees metadata only
    seen = tool_replies(root, 1)
    assert json.loads(seen["i"])["chars"] == len(context)
    assert seen["p"] == context[:10]
    assert "1 matches" in seen["g"]
    assert "walrus" in seen["g"]
    seen = tool_replies(root, 2)
    assert re.match(r"\d+ chunks: s1-0 \.\. s1-\d+", seen["s"])
    assert "1 found something" in seen["m"]
    seen = tool_replies(root, 3)
    assert seen["a1"] == "1"
    assert json.loads(seen["a2"]) == ["7251904"]
    assert "7251904" in seen["a3"]
    assert json.loads(seen["a4"]) == "7251904"
    assert seen["r"] == "reduced 7251904"


def test_grep_reports_the_chunk_of_each_match() -> None:
    context = haystack(20_000, 0.9)
    root = scripted(
        turn(call("split", "s", size=5_000), call("grep", "g", pattern="walrus")),
        turn(call("submit", "x", text="done")),
    )
    agent(root).invoke(QUESTION, context=context)
    assert re.search(r"@\d+ \[s1-3\]: .*walrus", tool_replies(root, 1)["g"])


def test_tool_errors_go_back_to_the_model() -> None:
    root = scripted(
        turn(
            call("nope", "u"),
            call("peek", "bad", start="x"),
            call("grep", "re", pattern="(unclosed"),
            call("map", "early", instruction="x"),
            call("aggregate", "nobuf", buffer="missing", op="count"),
            call("split", "s"),
            call("map", "ids", chunk_ids=["s9-9"], instruction="x"),
            call("submit", "empty"),
        ),
        AIMessage(
            content="",
            invalid_tool_calls=[
                {"name": "peek", "args": "{oops", "id": "inv", "error": "bad json", "type": "invalid_tool_call"}
            ],
        ),
        turn(*[call("info", f"i{n}") for n in range(20)]),
        "The final answer in plain text.",
    )
    result = agent(root).invoke(QUESTION, context="short context")
    seen = tool_replies(root, 1)
    assert "no tool named 'nope'" in seen["u"]
    assert "bad arguments for peek" in seen["bad"]
    assert "invalid regular expression" in seen["re"]
    assert "call split first" in seen["early"]
    assert "no buffer named 'missing'" in seen["nobuf"]
    assert "unknown chunk ids" in seen["ids"]
    assert "give text or buffer" in seen["empty"]
    assert "not valid JSON" in tool_replies(root, 2)["inv"]
    replies = tool_replies(root, 3)
    assert sum("at most 16 tool calls" in v for v in replies.values()) == 4
    assert result.exit_reason == "answered"
    assert result.answer == "The final answer in plain text."


# -- budgets ---------------------------------------------------------------------------------


def test_a_root_that_never_submits_ends_at_max_iterations_with_a_forced_answer() -> None:
    root = scripted(*[turn(call("peek", f"p{i}", start=0, end=5)) for i in range(3)], "Forced: no number found.")
    result = agent(root, max_iterations=3).invoke(QUESTION, context=haystack(5_000))
    assert result.exit_reason == "max_iterations"
    assert result.answer == "Forced: no number found."
    assert root.remaining == 0
    last = root.prompts[-1]
    assert "cannot call tools any more" in str(last[-1].content)
    assert not (isinstance(last[-2], AIMessage) and last[-2].tool_calls)  # no dangling tool calls


def test_a_root_that_recurses_forever_stops_at_max_depth() -> None:
    def root_fn(messages: list[BaseMessage]) -> AIMessage | str:
        if "cannot call tools" in str(messages[-1].content):
            return "stopped recursing"
        return turn(call("split", "s", size=2_000), call("map", "m", instruction=QUESTION))

    result = agent(function_model(root_fn), max_depth=2, max_iterations=2, sub_context_chars=500).invoke(
        QUESTION, context=haystack(4_000)
    )
    assert result.exit_reason == "max_depth"
    assert "max_depth" in result.limits_hit
    runs = [n for n in result.trace if n["kind"] == "run"]
    assert max(r["depth"] for r in runs) == 2
    assert any(n["kind"] == "plain" for n in result.trace)  # at the cap: one plain call per piece
    assert result.answer == "stopped recursing"


def test_a_tree_over_its_sub_call_budget_stops_there() -> None:
    result = RlmAgent(limits=RlmLimits(sub_context_chars=1_000, max_sub_calls=5, max_depth=0)).invoke(
        QUESTION, context=haystack(20_000, 0.1)
    )
    assert result.exit_reason == "budget"
    assert result.usage["sub_calls"] == 5
    assert "sub_calls" in result.limits_hit
    assert "5 sub-calls" in (result.error or "")
    assert "7251904" in result.answer  # the needle was in the first chunks: the forced answer keeps it


def test_token_budget_forces_the_answer() -> None:
    big = AIMessage(
        content="",
        tool_calls=[call("info", "i")],
        usage_metadata={"input_tokens": 900, "output_tokens": 200, "total_tokens": 1100},
    )
    root = scripted(big, "answer from what I had")
    result = agent(root, max_tokens=1_000).invoke(QUESTION, context="some text")
    assert result.exit_reason == "budget"
    assert "tokens" in result.limits_hit
    assert result.answer == "answer from what I had"


def test_a_failing_root_model_ends_with_error_and_the_partial_answer() -> None:
    root = scripted(
        turn(call("split", "s", size=5_000), call("map", "m", instruction=QUESTION, buffer="found")),
        RuntimeError("model server crashed"),
    )
    sub = function_model(lambda m: "7251904" if "7251904" in str(m[-1].content) else "NONE")
    result = agent(root, sub=sub).invoke(QUESTION, context=haystack(20_000))
    assert result.exit_reason == "error"
    assert "model server crashed" in (result.error or "")
    assert "7251904" in result.answer  # best gathered


def test_a_failing_sub_call_is_reported_and_the_map_goes_on() -> None:
    def sub_fn(messages: list[BaseMessage]) -> str:
        if "beta" in str(messages[-1].content):
            raise RuntimeError("sub-model down")
        return "found"

    root = scripted(
        turn(call("split", "s", size=12), call("map", "m", instruction="x")), turn(call("submit", "f", text="ok"))
    )
    result = agent(root, sub=function_model(sub_fn)).invoke("q?", context="alpha one.\n\nbeta two.\n\ngamma three.")
    reply = tool_replies(root, 1)["m"]
    assert "2 found something" in reply
    assert "1 chunks failed" in reply
    assert "sub-model down" in reply
    assert result.exit_reason == "answered"
    assert any(n.get("status") == "error" for n in result.trace)


# -- concurrency -----------------------------------------------------------------------------


def test_map_runs_concurrently_up_to_the_cap() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def slow(messages: list[BaseMessage]) -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return "NONE"

    paragraph = "x" * 47 + ".\n\n"
    limits = RlmLimits(max_depth=0, max_concurrency=8, sub_context_chars=len(paragraph))
    result = RlmAgent(sub_model=function_model(slow), limits=limits).invoke("what?", context=paragraph * 64)
    assert result.strategies == "model-reader"
    assert sum(n["kind"] == "map" for n in result.trace) == 64
    assert peak[0] == 8 == result.usage["peak_concurrency"]
