"""What code mode's OS boundary costs per ``run_python`` call; prints numbers, writes JSON.

Each case runs alternately through the isolated sandbox (bubblewrap + seccomp + uid 65534, the
default) and the unsafe one (the same child script in a plain process: the baseline), in the same
run, so the ratio compares like with like. Cases: an empty program, one with a 1 MB context it
searches, and one ``llm_query`` round trip.

    python -m evals.bench_sandbox --runs 30 --json runs/bench-sandbox.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

from tools.sandbox import Sandbox, SandboxLimits
from tools.sandbox._isolation import isolation_problem

__all__ = ["bench_sandbox", "main"]

CASES: dict[str, tuple[str, str]] = {
    "empty program": ("pass", ""),
    "1 MB context, regex": (
        "import re\nprint(len(re.findall(r'walrus is (\\d+)', context)))",
        "filler text. " * 80_000 + "The magic number for walrus is 7251904.",
    ),
    "one llm_query": ("print(llm_query('q'))", ""),
}


def _time(sandbox: Sandbox, code: str, context: str) -> float:
    started = time.perf_counter()
    result = sandbox.run(code, context=context, llm_query=lambda prompt: "a")
    elapsed = (time.perf_counter() - started) * 1000
    if result.error is not None:
        msg = f"the benchmark's code failed: {result.error}"
        raise RuntimeError(msg)
    return elapsed


def bench_sandbox(runs: int) -> dict[str, Any]:
    started = time.perf_counter()
    problem = isolation_problem()
    probe_ms = (time.perf_counter() - started) * 1000
    if problem is not None:
        msg = f"the OS boundary is not available here: {problem}"
        raise SystemExit(msg)
    limits = SandboxLimits(timeout_s=30)
    isolated = Sandbox(limits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        unsafe = Sandbox(limits, unsafe=True)
    rows = {}
    for name, (code, context) in CASES.items():
        _time(isolated, code, context), _time(unsafe, code, context)  # warm the page cache
        times: dict[str, list[float]] = {"isolated": [], "unsafe": []}
        for _ in range(runs):
            times["isolated"].append(_time(isolated, code, context))
            times["unsafe"].append(_time(unsafe, code, context))
        iso, base = statistics.median(times["isolated"]), statistics.median(times["unsafe"])
        rows[name] = {
            "isolated_median_ms": round(iso, 1),
            "isolated_p95_ms": round(sorted(times["isolated"])[int(0.95 * (runs - 1))], 1),
            "unsafe_median_ms": round(base, 1),
            "overhead_median_ms": round(iso - base, 1),
            "ratio": round(iso / base, 2),
        }
        print(
            f"{name:22s} isolated {iso:6.1f} ms (p95 {rows[name]['isolated_p95_ms']:6.1f})  "
            f"unsafe {base:6.1f} ms  overhead {iso - base:+6.1f} ms  x{iso / base:.2f}",
            flush=True,
        )
    return {"runs": runs, "probe_ms": round(probe_ms, 1), "cases": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per case and mode (medians reported)")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)
    report = bench_sandbox(args.runs)
    print(f"isolation probe (once per process): {report['probe_ms']} ms")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
