"""Benchmarks of the recursive long-context agent (RlmAgent); prints numbers, writes JSON.

``niah``: needle-in-a-haystack accuracy offline (the deterministic root plan with the extractive
sub-reader) at 100K, 1M and 10M characters, needles at depths 0-100%; reports accuracy, sub-calls
per question and how wall time grows with length.

``tasks``: the long-context tasks of :mod:`evals.longctx` (lookups, two-hop chains, aggregation
over records, questions to decline) offline at 1M and 10M characters; accuracy and exits by kind.

``concurrency``: a map over 1,000 chunks with a sub-model of fixed 100 ms latency at a cap of 16;
reports the map's wall time against the ideal (1000 / 16 x 100 ms) and the peak concurrency.

    python -m evals.bench_rlm niah --json runs/bench-niah.json
    python -m evals.bench_rlm tasks --split test --json runs/bench-rlm-tasks.json
    python -m evals.bench_rlm concurrency --json runs/bench-rlm-concurrency.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.rlm_agent import RlmAgent
from agents.testing import function_model
from evals.longctx import KINDS, long_tasks, score
from evals.niah import DEFAULT_ESSAYS, haystack, niah_items
from graphs.broker import RlmLimits

__all__ = ["bench_concurrency", "bench_niah", "bench_tasks", "main"]


def bench_niah(
    lengths: Sequence[int], *, per_depth: int = 3, seed: int = 0, essays: Path = DEFAULT_ESSAYS
) -> dict[str, Any]:
    agent = RlmAgent()
    rows: dict[int, list[dict[str, Any]]] = {n: [] for n in lengths}
    for item in niah_items(lengths, per_depth=per_depth, seed=seed, essays=essays):
        started = time.perf_counter()
        result = agent.invoke(item.question, context=item.context)
        seconds = time.perf_counter() - started
        rows[item.chars].append(
            {
                "id": item.id,
                "depth": item.depth,
                "correct": item.answer in result.answer,
                "exit_reason": result.exit_reason,
                "sub_calls": result.usage["sub_calls"],
                "tree_depth": result.depth,
                "seconds": round(seconds, 3),
            }
        )
    summary = {}
    for length, items in rows.items():
        summary[str(length)] = {
            "questions": len(items),
            "accuracy": round(sum(i["correct"] for i in items) / len(items), 4),
            "sub_calls_per_question": statistics.median(i["sub_calls"] for i in items),
            "tree_depth": max(i["tree_depth"] for i in items),
            "seconds_p50": round(statistics.median(i["seconds"] for i in items), 3),
            "misses": [i["id"] for i in items if not i["correct"]],
        }
    base = summary[str(lengths[0])]["seconds_p50"] or 1e-9
    for length in lengths:
        row = summary[str(length)]
        row["time_ratio_vs_first"] = round(row["seconds_p50"] / base, 2)
        row["length_ratio_vs_first"] = round(length / lengths[0], 2)
    return {"niah": summary, "items": rows}


def bench_tasks(
    lengths: Sequence[int],
    *,
    kinds: Sequence[str] = KINDS,
    per_kind: int = 30,
    split: str = "test",
    seed: int = 0,
    essays: Path = DEFAULT_ESSAYS,
    progress: bool = True,
) -> dict[str, Any]:
    """Accuracy of the offline agent on :func:`evals.longctx.long_tasks`, by length and kind."""
    agent = RlmAgent()
    rows: list[dict[str, Any]] = []
    base, base_chars = "", -1
    for task in long_tasks(lengths, kinds=kinds, per_kind=per_kind, split=split, seed=seed):
        if task.chars != base_chars:
            base, base_chars = haystack(task.chars, essays), task.chars
        started = time.perf_counter()
        result = agent.invoke(task.question, context=task.context(base))
        seconds = time.perf_counter() - started
        ok = score(task, result.exit_reason, result.answer)
        rows.append(
            {
                "id": task.id,
                "kind": task.kind,
                "chars": task.chars,
                "question": task.question,
                "gold": task.answer,
                "correct": ok,
                "exit_reason": result.exit_reason,
                "answer": result.answer[:400],
                "seconds": round(seconds, 3),
            }
        )
        if progress:
            print(f"{task.id:<28} {'ok ' if ok else 'MISS'} {result.exit_reason:<10} {seconds:6.2f} s", flush=True)
    summary: dict[str, dict[str, Any]] = {}
    for length in lengths:
        for kind in kinds:
            items = [r for r in rows if r["chars"] == length and r["kind"] == kind]
            if not items:
                continue
            exits: dict[str, int] = {}
            for r in items:
                exits[r["exit_reason"]] = exits.get(r["exit_reason"], 0) + 1
            summary[f"{length}/{kind}"] = {
                "chars": length,
                "kind": kind,
                "items": len(items),
                "correct": sum(r["correct"] for r in items),
                "accuracy": round(sum(r["correct"] for r in items) / len(items), 4),
                "wrong_answered": sum(1 for r in items if not r["correct"] and r["exit_reason"] == "answered"),
                "exits": exits,
                "seconds_p50": round(statistics.median(r["seconds"] for r in items), 3),
            }
    return {"split": split, "seed": seed, "summary": summary, "items": rows}


def bench_concurrency(chunks: int = 1000, cap: int = 16, latency_s: float = 0.1) -> dict[str, Any]:
    """Map over ``chunks`` chunks through the real graph: the deterministic root plan splits (one
    chunk per paragraph) and maps a model reader whose model sleeps ``latency_s`` per call."""
    paragraph = ("x" * 97) + ".\n\n"  # 100 characters: one chunk each at sub_context_chars=100
    text = paragraph * chunks
    limits = RlmLimits(max_depth=0, max_concurrency=cap, sub_context_chars=len(paragraph), max_sub_calls=None)
    # The sub-model stands in for a remote model: a fixed latency, and nothing found in any chunk.
    agent = RlmAgent(sub_model=function_model(lambda _messages: "NONE", sleep=latency_s), limits=limits)
    started = time.perf_counter()
    result = agent.invoke("What is here?", context=text)
    total = time.perf_counter() - started
    maps = [n for n in result.trace if n["kind"] == "map"]
    map_wall = (max(n["at"] + n["ms"] for n in maps) - min(n["at"] for n in maps)) / 1000
    ideal = chunks / cap * latency_s
    return {
        "chunks": len(maps),
        "cap": cap,
        "latency_s": latency_s,
        "ideal_s": round(ideal, 3),
        "map_wall_s": round(map_wall, 3),
        "ratio_to_ideal": round(map_wall / ideal, 3),
        "run_wall_s": round(total, 3),
        "peak_concurrency": result.usage["peak_concurrency"],
        "sequential_s": round(chunks * latency_s, 1),
        "exit_reason": result.exit_reason,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="bench", required=True)
    niah = sub.add_parser("niah", help="needle in a haystack, offline")
    niah.add_argument("--lengths", default="100000,1000000,10000000")
    niah.add_argument("--per-depth", type=int, default=3, help="needles per depth (11 depths, 0-100%%)")
    niah.add_argument("--seed", type=int, default=0)
    niah.add_argument("--essays", type=Path, default=DEFAULT_ESSAYS)
    niah.add_argument("--json", type=Path)
    tasks = sub.add_parser("tasks", help="lookups, chains, aggregation and declines, offline")
    tasks.add_argument("--lengths", default="1000000,10000000")
    tasks.add_argument("--kinds", default=",".join(KINDS))
    tasks.add_argument("--per-kind", type=int, default=30)
    tasks.add_argument("--split", choices=["dev", "test"], default="test")
    tasks.add_argument("--seed", type=int, default=0)
    tasks.add_argument("--essays", type=Path, default=DEFAULT_ESSAYS)
    tasks.add_argument("--json", type=Path)
    conc = sub.add_parser("concurrency", help="map over 1,000 chunks with a 100 ms sub-model")
    conc.add_argument("--chunks", type=int, default=1000)
    conc.add_argument("--cap", type=int, default=16)
    conc.add_argument("--latency", type=float, default=0.1)
    conc.add_argument("--repeat", type=int, default=3)
    conc.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.bench == "niah":
        lengths = [int(n) for n in args.lengths.split(",")]
        report = bench_niah(lengths, per_depth=args.per_depth, seed=args.seed, essays=args.essays)
        for length, row in report["niah"].items():
            print(
                f"{int(length):>10,} chars  accuracy {row['accuracy']:.3f} ({row['questions']} questions)  "
                f"sub-calls/question {row['sub_calls_per_question']}  depth {row['tree_depth']}  "
                f"p50 {row['seconds_p50']} s  "
                f"(x{row['time_ratio_vs_first']} time for x{row['length_ratio_vs_first']} length)"
            )
    elif args.bench == "tasks":
        report = bench_tasks(
            [int(n) for n in args.lengths.split(",")],
            kinds=args.kinds.split(","),
            per_kind=args.per_kind,
            split=args.split,
            seed=args.seed,
            essays=args.essays,
        )
        print(f"split {args.split}, seed {args.seed}")
        for row in report["summary"].values():
            exits = ", ".join(f"{k} {v}" for k, v in sorted(row["exits"].items()))
            print(
                f"{row['chars']:>10,} chars  {row['kind']:<12} {row['correct']:>3}/{row['items']:<3} "
                f"({row['accuracy']:.3f})  wrong but answered {row['wrong_answered']}  exits: {exits}  "
                f"p50 {row['seconds_p50']} s"
            )
    else:
        runs = [bench_concurrency(args.chunks, args.cap, args.latency) for _ in range(args.repeat)]
        for run in runs:
            print(
                f"{run['chunks']} chunks, cap {run['cap']}, {run['latency_s'] * 1000:g} ms sub-model: "
                f"map {run['map_wall_s']} s "
                f"(ideal {run['ideal_s']} s, x{run['ratio_to_ideal']}), run {run['run_wall_s']} s, "
                f"peak concurrency {run['peak_concurrency']}, sequential would be {run['sequential_s']} s"
            )
        ratio = statistics.median(r["ratio_to_ideal"] for r in runs)
        print(f"median ratio to ideal: x{ratio}")
        report = {"runs": runs, "median_ratio_to_ideal": ratio}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
