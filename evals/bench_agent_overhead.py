"""What our ReAct agent costs per step next to LangChain's ``create_agent``; prints numbers, writes JSON.

Both agents get the same zero-latency chat model (one :class:`~agents.testing.FunctionChatModel`
class: it asks for one call of a trivial ``add`` tool per turn until ``--calls`` tool results are
in the conversation, then answers; each reply carries usage metadata, as a server's would), the
same tool and the same system prompt. They run alternately in one process after a warm-up, each
side first in every other round and the heap collected before each run, so the ratio compares
like with like. A step is a model turn plus its tool call: ms per step is a whole run's wall time
(``ReactAgent.invoke`` / ``create_agent(...).invoke``, the final answer turn included) divided by
``--calls``. Medians over ``--runs``; the CPU time of the process (every thread) is reported too,
as it moves less than wall-clock time on a busy machine.

    python -m evals.bench_agent_overhead --runs 30 --json runs/bench-agent-overhead.json
    python -m evals.bench_agent_overhead --profile   # cProfile of our agent's runs, top 30
    python -m evals.bench_agent_overhead --tracing   # ours with OpenTelemetry spans on vs off

``--tracing`` runs our agent alone, alternately with tracing off (no tracer provider: what every
run does unless OpenTelemetry is configured) and on (the SDK's tracer provider with a synchronous
in-memory exporter, cleared after each run: every span of a run, about 4 per step, built and
exported), and reports the ratio of the medians.

Needs the ``dev`` extra (``langchain`` 1.x, for ``create_agent``).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from agents.react_agent import ReactAgent
from agents.testing import FunctionChatModel, function_model
from graphs.budget import Limits
from graphs.react import DEFAULT_SYSTEM_PROMPT

__all__ = ["bench_agent_overhead", "bench_tracing", "main"]

QUESTION = "Add one, again and again."


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def scripted_model(calls: int) -> FunctionChatModel:
    """A zero-latency model: one ``add`` call per turn until ``calls`` results are in, then the answer."""

    def reply(messages: list[BaseMessage]) -> AIMessage:
        done = sum(isinstance(m, ToolMessage) for m in messages)
        usage = {"input_tokens": 20 * len(messages), "output_tokens": 12, "total_tokens": 20 * len(messages) + 12}
        if done < calls:
            call = {"name": "add", "args": {"a": done, "b": 1}, "id": f"call_{done}", "type": "tool_call"}
            return AIMessage("", tool_calls=[call], usage_metadata=usage)
        return AIMessage(f"The total is {calls}.", usage_metadata=usage)

    return function_model(reply)


def _agents(calls: int) -> dict[str, Callable[[], int]]:
    """Each side as a callable that runs one question and returns the tool calls it made."""
    from langchain.agents import create_agent

    model = scripted_model(calls)
    # Room for every turn: the budget and turn limit must not be what ends the run.
    ours = ReactAgent(
        model,
        tools=[add],
        read_documents=False,
        max_turns=calls + 2,
        limits=Limits(max_model_calls=calls + 2, max_tokens=None, deadline_s=None),
    )
    theirs = create_agent(model, tools=[add], system_prompt=DEFAULT_SYSTEM_PROMPT)
    config: Any = {"recursion_limit": 2 * calls + 10}

    def run_ours() -> int:
        result = ours.invoke(QUESTION)
        if result.exit_reason != "answered":
            msg = f"ReactAgent ended with {result.exit_reason}: {result.error}"
            raise RuntimeError(msg)
        return len(result.tool_calls)

    def run_theirs() -> int:
        state = theirs.invoke({"messages": [HumanMessage(QUESTION)]}, config)
        return sum(isinstance(m, ToolMessage) for m in state["messages"])

    return {"react_agent": run_ours, "create_agent": run_theirs}


def _ms_per_step(run: Callable[[], int], calls: int) -> tuple[float, float]:
    """Wall-clock and CPU (this process, all threads) milliseconds per step of one run."""
    started, cpu = time.perf_counter(), time.process_time()
    made = run()
    elapsed, cpu_elapsed = (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000
    if made != calls:
        msg = f"the run made {made} tool calls, not {calls}"
        raise RuntimeError(msg)
    return elapsed / calls, cpu_elapsed / calls


def bench_agent_overhead(runs: int, calls: int = 20, warmup: int = 3) -> dict[str, Any]:
    sides = _agents(calls)
    for _ in range(warmup):
        for run in sides.values():
            _ms_per_step(run, calls)
    wall: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for i in range(runs):
        # Each side goes first every other round, and each run starts from a collected heap, so
        # neither pays for the other's garbage or for its place in the round.
        for name in names if i % 2 == 0 else names[::-1]:
            gc.collect()
            ms, cpu_ms = _ms_per_step(sides[name], calls)
            wall[name].append(ms)
            cpu[name].append(cpu_ms)
    rows = {
        name: {
            "median_ms_per_step": round(statistics.median(values), 3),
            "p95_ms_per_step": round(sorted(values)[int(0.95 * (len(values) - 1))], 3),
            "min_ms_per_step": round(min(values), 3),
            "cpu_median_ms_per_step": round(statistics.median(cpu[name]), 3),
        }
        for name, values in wall.items()
    }
    ratio = statistics.median(wall["react_agent"]) / statistics.median(wall["create_agent"])
    cpu_ratio = statistics.median(cpu["react_agent"]) / statistics.median(cpu["create_agent"])
    return {
        "runs": runs,
        "tool_calls": calls,
        "warmup": warmup,
        "agents": rows,
        "ratio": round(ratio, 3),
        "cpu_ratio": round(cpu_ratio, 3),
    }


def bench_tracing(runs: int, calls: int = 20, warmup: int = 3) -> dict[str, Any]:
    """Our agent with tracing off and on, alternately; medians and their ratio."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    run = _agents(calls)["react_agent"]
    spans: list[int] = []

    def side(on: bool) -> Callable[[], int]:
        def go() -> int:
            trace._TRACER_PROVIDER = provider if on else None
            try:
                return run()
            finally:
                trace._TRACER_PROVIDER = None
                if on:
                    spans.append(len(exporter.get_finished_spans()))
                exporter.clear()

        return go

    sides = {"tracing_off": side(False), "tracing_on": side(True)}
    for _ in range(warmup):
        for go in sides.values():
            _ms_per_step(go, calls)
    wall: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for i in range(runs):
        for name in names if i % 2 == 0 else names[::-1]:
            gc.collect()
            wall[name].append(_ms_per_step(sides[name], calls)[0])
    provider.shutdown()
    medians = {name: round(statistics.median(values), 3) for name, values in wall.items()}
    return {
        "runs": runs,
        "tool_calls": calls,
        "median_ms_per_step": medians,
        "spans_per_run": statistics.median(spans),
        "ratio": round(medians["tracing_on"] / medians["tracing_off"], 3),
    }


def profile(runs: int, calls: int = 20, top: int = 30) -> None:
    """cProfile our agent's runs (after a warm-up) and print the ``top`` functions by own time."""
    run = _agents(calls)["react_agent"]
    for _ in range(3):
        run()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per agent, alternating (medians reported)")
    parser.add_argument("--calls", type=int, default=20, help="tool calls per run before the answer")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    parser.add_argument("--profile", action="store_true", help="profile our agent instead of comparing")
    parser.add_argument("--tracing", action="store_true", help="ours with tracing on vs off")
    args = parser.parse_args(argv)
    if args.profile:
        profile(args.runs, args.calls)
        return 0
    if args.tracing:
        traced = bench_tracing(args.runs, args.calls)
        off, on = traced["median_ms_per_step"]["tracing_off"], traced["median_ms_per_step"]["tracing_on"]
        print(f"tracing off {off:6.3f} ms/step, on {on:6.3f} ms/step ({traced['spans_per_run']:.0f} spans a run)")
        print(f"tracing on / off: x{traced['ratio']:.2f} per step, wall-clock medians ({args.runs} runs each)")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(traced, indent=2))
        return 0
    report = bench_agent_overhead(args.runs, args.calls)
    for name, row in report["agents"].items():
        print(
            f"{name:13s} {row['median_ms_per_step']:6.3f} ms/step median "
            f"(p95 {row['p95_ms_per_step']:6.3f}, min {row['min_ms_per_step']:6.3f}; "
            f"CPU {row['cpu_median_ms_per_step']:6.3f})"
        )
    print(
        f"react_agent / create_agent: x{report['ratio']:.2f} per step, wall-clock medians "
        f"(CPU x{report['cpu_ratio']:.2f}; {args.calls} tool calls, {args.runs} runs each)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
