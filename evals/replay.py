"""Replay the offline answerer over the evidence an earlier run retrieved: tune answers in seconds.

A RAG run (``arag eval run --agent rag``) records, per question, the chunks the answer was drawn
from (``evidence`` in ``results.jsonl``). Retrieval is the slow part of a run and the answerer
the part being tuned, so this script rebuilds the heuristic answerer from the code as it is now,
answers every recorded question again from its recorded evidence, and scores the answers with
the harness's own metrics (EM, F1, abstained), overall and by the kind of answer the question
asks for (:func:`tools.questions.read_question`), next to the run's recorded numbers.

Only dev splits replay: the rule is to tune on dev and report on test, so a run of a test split is
refused (run the whole agent on test to report). What replay cannot show: a change to retrieval,
grading or refining (those need a new run), and a validate-and-retry loop the new answer would
have triggered (the answer node's first draft is scored).

    python -m evals.replay runs/dev-base                    # summary
    python -m evals.replay runs/dev-base --show 20          # and 20 wrong answers, with the gold
    python -m evals.replay runs/dev-base --kind date --show 10 --json runs/replay.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from evals import answer_metrics as am
from evals.datasets import load_dataset
from evals.harness import item_metrics

TUNING_SPLITS = frozenset({"dev", "unseen-dev"})
"""Splits whose runs may be replayed: the dev halves (``test`` and ``unseen`` are for reporting)."""

__all__ = ["TUNING_SPLITS", "replay"]


def _chunks(evidence: list[dict[str, Any]]) -> list[Any]:
    from tools.search import RetrievedChunk

    return [
        RetrievedChunk(
            id=str(e["id"]),
            score=0.0,  # the answerer reads the order, not the scores
            source=str(e.get("source", "")),
            doc_id=str(e.get("doc_id", "")),
            title=str(e.get("title", "")),
            text=str(e.get("text", "")),
        )
        for e in evidence
    ]


def replay(run_dir: Path, *, kind: str | None = None) -> dict[str, Any]:
    """Answer every recorded question of ``run_dir`` again from its recorded evidence; the rows
    (question, gold, old and new prediction and metrics) and their means."""
    from agents.components import build_embeddings
    from agents.settings import Settings
    from graphs.budget import Budget
    from graphs.heuristic import HeuristicAnswerer
    from tools.questions import read_question

    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    dataset = manifest["dataset"]
    if dataset["split"] not in TUNING_SPLITS:
        msg = (
            f"{run_dir} is a run of the {dataset['split']!r} split: only dev splits "
            f"({', '.join(sorted(TUNING_SPLITS))}) are replayed for tuning; report on test with a whole run"
        )
        raise SystemExit(msg)
    data = load_dataset(dataset["name"], split=dataset["split"])
    items = {item.id: item for item in data.items}
    answerer = HeuristicAnswerer(build_embeddings(Settings()))
    rows: list[dict[str, Any]] = []
    without_evidence = 0
    for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines():
        recorded = json.loads(line)
        item = items.get(recorded["id"])
        if item is None:
            continue
        asked_kind = read_question(item.question).kind or "description"
        if kind is not None and asked_kind != kind:
            continue
        if "evidence" not in recorded:  # an error, or a run from before evidence was recorded
            without_evidence += 1
            continue
        draft = answerer.answer(item.question, _chunks(recorded["evidence"]), [], Budget())
        record = {
            "prediction": draft.short or draft.text,
            "said": draft.text,
            "exit_reason": "abstained" if draft.abstained else "answered",
            "cited": [e["doc_id"] for e in recorded["evidence"] if e["id"] in draft.citations],
        }
        metrics = item_metrics(item, record, data.kind)
        rows.append(
            {
                "id": item.id,
                "question": item.question,
                "kind": asked_kind,
                "gold": list(item.answers),
                "was": recorded["prediction"],
                "was_metrics": recorded.get("metrics", {}),
                "now": record["prediction"],
                "now_exit": record["exit_reason"],
                "metrics": metrics,
            }
        )
    return {"run": str(run_dir), "dataset": dataset, "rows": rows, "without_evidence": without_evidence}


def _means(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ("em", "f1", "abstained"):
        values = [r[key].get(name) for r in rows if r[key].get(name) is not None]
        out[name] = round(statistics.fmean(values), 4) if values else 0.0
    return out


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """Means of the recorded run and of the replay, overall and per asked kind."""
    rows = result["rows"]
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row)
    return {
        "questions": len(rows),
        "without_evidence": result["without_evidence"],
        "recorded": _means(rows, "was_metrics"),
        "replayed": _means(rows, "metrics"),
        "by_kind": {
            k: {"n": len(v), "recorded": _means(v, "was_metrics"), "replayed": _means(v, "metrics")}
            for k, v in sorted(by_kind.items())
        },
    }


def _print_changes(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
    """The questions whose replayed answer changed since ``before``, with both F1s."""
    earlier = {row["id"]: row for row in before}
    changed = [
        (earlier[row["id"]], row) for row in after if row["id"] in earlier and earlier[row["id"]]["now"] != row["now"]
    ]
    print(f"\n{len(changed)} answers changed")
    for old, new in changed:
        was, now = old["metrics"].get("f1") or 0.0, new["metrics"].get("f1") or 0.0
        print(
            f"  {was:.2f} -> {now:.2f} [{new['kind']}] {new['question'][:110]}\n      gold {new['gold'][0]!r}: "
            f"{am.normalize_answer(old['now'])[:60]!r} -> {am.normalize_answer(new['now'])[:60]!r}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="A run folder of a dev split (manifest.json, results.jsonl).")
    parser.add_argument("--kind", default=None, help="Only questions asking for this kind (date, person, ...).")
    parser.add_argument("--show", type=int, default=0, help="Print this many answers that score below F1 0.5.")
    parser.add_argument("--json", type=Path, default=None, help="Write the rows and the summary here.")
    parser.add_argument("--diff", type=Path, default=None, help="An earlier --json: print the answers that changed.")
    args = parser.parse_args(argv)
    result = replay(args.run_dir, kind=args.kind)
    report = summary(result)
    print(f"{report['questions']} questions replayed ({report['without_evidence']} without recorded evidence)")
    print(f"  recorded: {report['recorded']}")
    print(f"  replayed: {report['replayed']}")
    for name, part in report["by_kind"].items():
        print(
            f"  {name:<12} n={part['n']:<4} f1 {part['recorded']['f1']:.3f} -> {part['replayed']['f1']:.3f}"
            f"  abstained {part['recorded']['abstained']:.2f} -> {part['replayed']['abstained']:.2f}"
        )
    wrong = [r for r in result["rows"] if (r["metrics"].get("f1") or 0.0) < 0.5][: args.show]
    for row in wrong:
        print(
            f"\n[{row['kind']}] {row['question']}\n  gold: {row['gold']}\n  now ({row['now_exit']}): "
            f"{am.normalize_answer(row['now'])[:160]!r}"
        )
    if args.diff:
        _print_changes(json.loads(args.diff.read_text(encoding="utf-8"))["rows"], result["rows"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": report, **result}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
