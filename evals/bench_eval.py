"""Checks of the eval harness itself, on a real dataset: two runs of one configuration give identical
metrics; a run killed halfway (SIGKILL) and resumed gives the same results as an uninterrupted
one; ``compare`` of two configurations. Prints the numbers.

    python -m evals.bench_eval --dataset hotpotqa --limit 100 --runs-dir runs/bench-eval
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from evals.harness import compare, load_run


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "agents.cli", "eval", "run", "--quiet", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603


def _finish(process: subprocess.Popen[bytes]) -> None:
    _, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"eval run failed ({process.returncode}): {err.decode()[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="hotpotqa")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/bench-eval"))
    args = parser.parse_args(argv)
    common = ["--dataset", args.dataset, "--split", args.split, "--limit", str(args.limit)]
    common += ["--concurrency", str(args.concurrency), "--runs-dir", str(args.runs_dir)]
    stamp = time.strftime("%H%M%S")
    a, b, killed, variant = (f"{stamp}-{name}" for name in ("a", "b", "killed", "topk3"))

    started = time.perf_counter()
    _finish(_cli(*common, "--run-id", a))
    seconds_a = time.perf_counter() - started
    _finish(_cli(*common, "--run-id", b))
    summary_a, rows_a = load_run(args.runs_dir / a)
    summary_b, rows_b = load_run(args.runs_dir / b)
    same = summary_a["metrics"] == summary_b["metrics"]
    same_answers = [r["prediction"] for r in rows_a] == [r["prediction"] for r in rows_b]
    print(f"run A: {len(rows_a)} items in {seconds_a:.1f} s; metrics {json.dumps(_rounded(summary_a['metrics']))}")
    print(f"determinism: run B metrics identical to A: {same}; every answer identical: {same_answers}")

    process = _cli(*common, "--run-id", killed)
    results = args.runs_dir / killed / "results.jsonl"
    while process.poll() is None:
        if results.is_file() and len(results.read_text().splitlines()) >= args.limit // 2:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait()
    kept = len(results.read_text().splitlines())
    _finish(_cli(*common, "--run-id", killed))
    summary_k, rows_k = load_run(args.runs_dir / killed)
    resumed_same = summary_k["metrics"] == summary_a["metrics"]
    resumed_answers = [r["prediction"] for r in rows_k] == [r["prediction"] for r in rows_a]
    print(
        f"resume: killed (SIGKILL) with {kept}/{args.limit} items written, resumed; metrics identical to "
        f"an uninterrupted run: {resumed_same}; every answer identical: {resumed_answers}"
    )

    env = {**os.environ, "ARAG_TOP_K": "3"}
    _finish(_cli(*common, "--run-id", variant, env=env))
    comparison = compare(args.runs_dir / a, args.runs_dir / variant, threshold=0.0)
    print(f"compare A (top_k 10) -> ARAG_TOP_K=3 over {comparison['items']} items:")
    for row in comparison["metrics"]:
        mark = " significant" if row["significant"] else ""
        print(
            f"  {row['name']:<20} {row['a']:.4f} -> {row['b']:.4f}  {row['delta']:+.4f} "
            f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]{mark}"
        )
    print(f"  flipped item-metrics: {len(comparison['flipped'])}; regressions: {comparison['regressions']}")
    print(f"reports: {args.runs_dir / a / 'report.html'}, {args.runs_dir / variant / 'report.html'}")
    return 0 if same and resumed_same else 1


def _rounded(metrics: dict[str, float | None]) -> dict[str, float | None]:
    return {k: None if v is None else round(v, 4) for k, v in metrics.items()}


if __name__ == "__main__":
    sys.exit(main())
