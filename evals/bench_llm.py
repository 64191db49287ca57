"""The three agents against a real inference server: wall time per question, calls, caps, paths.

llama-cpp-python's OpenAI-compatible server with Gemma 3 270M (``make llm-install``; started
here on a free loopback port by :class:`agents.testing.LlamaServer`), reached with the real
``ChatOpenAI`` client. The store is the bundled ``examples/corpus`` ingested with the real
all-MiniLM-L6-v2 (``arag ingest``). Each agent answers ``--questions`` of the demo questions
(the recursive agent over the corpus's text repeated to about 40,000 characters). It is a BASE
model: the numbers are the cost of the plumbing on two cores (prompt processing dominates), not
of answer quality, which is not measured.

Reported per agent: wall seconds per question (median and max), model calls and output tokens
per question, the largest reply against the cap (``ARAG_MAX_OUTPUT_TOKENS``, 64 here), the exit
reasons, and the request paths the client settled on for this server (``model_paths``: cap
parameters, structured output, tool choice) with each fallback. Exits 1 when any reply exceeded
the cap, a run ended with ``error``, or a run did not end within its deadline.

    python -m evals.bench_llm --json runs/bench-llm.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from evals.bench_serve import CORPUS, QUESTIONS, ingest

__all__ = ["main"]

CAP = 64


def _long_text() -> str:
    pieces = [p.read_text(errors="replace") for p in sorted(CORPUS.iterdir()) if p.suffix in (".md", ".txt")]
    text = "\n\n".join(pieces)
    return "\n\n".join([text] * max(1, 40_000 // max(len(text), 1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=3, help="questions per agent")
    parser.add_argument("--deadline", type=float, default=180.0, help="seconds a run may take")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)

    from agents.build import build_agents
    from agents.settings import LimitSettings, Settings, StoreSettings
    from agents.testing import LlamaServer, ReplyLog, missing_llama
    from graphs.broker import RlmLimits
    from graphs.budget import Limits

    if (reason := missing_llama()) is not None:
        print(reason, file=sys.stderr)
        return 2
    questions = QUESTIONS[: args.questions]
    report: dict[str, Any] = {"cap": CAP, "questions": len(questions), "agents": {}}
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as folder, LlamaServer() as llm:
        data = Path(folder)
        print(f"ingesting {CORPUS} ...", flush=True)
        ingest(data)
        replies = ReplyLog()
        model = llm.chat_model(max_tokens=CAP, timeout=120, callbacks=[replies])
        settings = Settings(store=StoreSettings(data_dir=data), limits=LimitSettings(deadline=args.deadline))
        with build_agents(settings, chat_model=model, threads=False) as built:
            react = built.react
            assert react is not None
            built.rag.limits = Limits(deadline_s=args.deadline, max_model_calls=12)
            built.rlm.limits = RlmLimits(deadline_s=args.deadline, max_iterations=4, max_sub_calls=16)
            long_text = _long_text()
            runs: dict[str, Any] = {
                "rag": lambda q: built.rag.invoke(q),
                "react": lambda q: react.invoke(q),
                "rlm": lambda q: built.rlm.invoke(q, context=long_text),
            }
            for name, run in runs.items():
                seconds: list[float] = []
                calls: list[int] = []
                tokens: list[int] = []
                exits: Counter[str] = Counter()
                paths: dict[str, str] = {}
                fallbacks: list[str] = []
                biggest = 0
                for question in questions:
                    replies.replies.clear()
                    started = time.perf_counter()
                    result = run(question)
                    seconds.append(time.perf_counter() - started)
                    calls.append(int(result.usage.get("model_calls", 0)))
                    tokens.append(int(result.usage.get("output_tokens", 0)))
                    exits[result.exit_reason] += 1
                    paths.update(result.usage.get("model_paths", {}))
                    fallbacks += [s["detail"] for s in result.steps if s.get("event") == "model_fallback"]
                    biggest = max([biggest, *(tokens for tokens, _ in replies.replies)])
                    failed |= result.exit_reason == "error" or seconds[-1] > args.deadline + 30
                    print(f"  {name}: {seconds[-1]:6.1f} s  {result.exit_reason:<14} {question}", flush=True)
                failed |= biggest > CAP
                report["agents"][name] = {
                    "seconds_median": round(statistics.median(seconds), 2),
                    "seconds_max": round(max(seconds), 2),
                    "model_calls_per_question": round(statistics.mean(calls), 1),
                    "output_tokens_per_question": round(statistics.mean(tokens), 1),
                    "largest_reply_tokens": biggest,
                    "exit_reasons": dict(exits),
                    "model_paths": paths,
                    "fallbacks": sorted(set(fallbacks)),
                }
    print(f"\n{'agent':<6} {'median s':>9} {'max s':>7} {'calls/q':>8} {'out tok/q':>10} {'largest':>8}  exits")
    for name, row in report["agents"].items():
        times = f"{row['seconds_median']:>9.1f} {row['seconds_max']:>7.1f}"
        counts = f"{row['model_calls_per_question']:>8.1f} {row['output_tokens_per_question']:>10.1f}"
        print(f"{name:<6} {times} {counts} {row['largest_reply_tokens']:>5}/{CAP}  {row['exit_reasons']}")
        print(f"       paths: {row['model_paths']}")
        for fallback in row["fallbacks"]:
            print(f"       fallback: {fallback}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
