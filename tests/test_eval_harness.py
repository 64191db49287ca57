"""The eval harness end to end on small datasets: files written, metrics, determinism, resume after
a kill, compare and its gate, the CLI, bad inputs. Offline, with the deterministic fake embedder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import evals
from agents.cli import main
from agents.settings import Settings
from agents.testing import FakeEmbeddings, scripted
from evals.datasets import load_dataset
from evals.harness import item_metrics

PARAGRAPHS = {
    "Apollo 11": [
        "Apollo 11 was the first crewed mission to land on the Moon.",
        " It landed on 20 July 1969 in the Sea of Tranquility.",
    ],
    "Neil Armstrong": ["Neil Armstrong commanded Apollo 11.", " He was born in Wapakoneta, Ohio."],
    "Honey bee": ["Honey bees perform the waggle dance.", " The dance tells other bees where flowers are."],
    "Rosetta Stone": ["The Rosetta Stone helped decipher hieroglyphs.", " Champollion deciphered them in 1822."],
}
QUESTIONS = [
    ("q1", "When did Apollo 11 land on the Moon?", "20 July 1969", [("Apollo 11", 1)], "bridge"),
    ("q2", "Where was the commander of Apollo 11 born?", "Wapakoneta, Ohio", [("Neil Armstrong", 1)], "bridge"),
    ("q3", "What does the waggle dance tell other bees?", "where flowers are", [("Honey bee", 1)], "comparison"),
    ("q4", "Who deciphered the hieroglyphs?", "Champollion", [("Rosetta Stone", 1)], "comparison"),
    ("q5", "Did Champollion decipher hieroglyphs?", "yes", [("Rosetta Stone", 1)], "comparison"),
    ("q6", "Which mission landed in the Sea of Tranquility?", "Apollo 11", [("Apollo 11", 1)], "bridge"),
]


@pytest.fixture
def hotpot_dir(tmp_path: Path) -> Path:
    """A HotpotQA-format folder: questions.jsonl (with supporting facts) and corpus.jsonl."""
    folder = tmp_path / "hotpot"
    folder.mkdir()
    titles = sorted(PARAGRAPHS)
    with (folder / "corpus.jsonl").open("w") as handle:
        for i, title in enumerate(titles):
            handle.write(json.dumps({"_id": f"p{i}", "title": title, "text": "".join(PARAGRAPHS[title])}) + "\n")
    with (folder / "questions.jsonl").open("w") as handle:
        for qid, question, answer, facts, kind in QUESTIONS:
            context = [[t, PARAGRAPHS[t]] for t in titles]
            row = {"_id": qid, "question": question, "answer": answer, "type": kind, "supporting_facts": facts}
            handle.write(json.dumps({**row, "context": context}) + "\n")
    return folder


def run_hotpot(folder: Path, tmp_path: Path, run_id: str, **kwargs: Any) -> evals.RunResult:
    return evals.run(
        folder,
        split="all",
        run_id=run_id,
        runs_dir=tmp_path / "runs",
        embeddings=FakeEmbeddings(),
        settings=Settings(),
        **kwargs,
    )


def test_a_run_writes_results_manifest_summary_and_report(hotpot_dir: Path, tmp_path: Path) -> None:
    result = run_hotpot(hotpot_dir, tmp_path, "first", concurrency=3)
    files = {p.name for p in result.dir.iterdir()}
    assert {"results.jsonl", "manifest.json", "summary.json", "report.md", "report.html"} <= files
    manifest = json.loads((result.dir / "manifest.json").read_text())
    assert manifest["dataset"]["items"] == 6
    assert len(manifest["dataset"]["fingerprint"]) == 64
    assert len(manifest["corpus_hash"]) == 64
    assert manifest["model"] == "heuristic (no model)"
    assert manifest["settings"]["top_k"] == 10
    assert "data_dir" not in manifest["settings"]
    rows = result.rows
    assert [r["id"] for r in rows] == ["q1", "q2", "q3", "q4", "q5", "q6"]  # dataset order, whatever finished first
    summary = result.summary
    assert set(summary["categories"]) == {"bridge", "comparison"}
    assert summary["categories"]["bridge"]["n"] == 3
    for name in ("em", "f1", "recall@5", "all_gold@10", "ndcg@10", "citation_precision", "sp_f1"):
        assert name in summary["metrics"], name
    # The mean of each metric is the mean of the per-item values that are defined.
    f1s = [r["metrics"]["f1"] for r in rows]
    assert summary["metrics"]["f1"] == pytest.approx(sum(f1s) / len(f1s))
    assert summary["metrics"]["recall@10"] == 1.0  # four paragraphs: every gold one is in the top 10
    assert summary["latency"]["p50"] > 0
    assert summary["exit_reasons"]
    assert "retrieve" in summary["per_node"]
    assert summary["per_node"]["retrieve"]["calls"] >= 6
    html = result.report_html.read_text()
    assert html.count("<svg") == 3


def test_two_runs_of_one_configuration_give_identical_metrics(hotpot_dir: Path, tmp_path: Path) -> None:
    a = run_hotpot(hotpot_dir, tmp_path, "a", concurrency=1)
    b = run_hotpot(hotpot_dir, tmp_path, "b", concurrency=4)
    assert a.summary["metrics"] == b.summary["metrics"]
    assert [r["prediction"] for r in a.rows] == [r["prediction"] for r in b.rows]


def test_a_killed_run_resumes_to_the_same_results(hotpot_dir: Path, tmp_path: Path) -> None:
    whole = run_hotpot(hotpot_dir, tmp_path, "whole")

    def kill_after_three(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_hotpot(hotpot_dir, tmp_path, "killed", progress=kill_after_three)
    results = tmp_path / "runs" / "killed" / "results.jsonl"
    assert len(results.read_text().splitlines()) == 3
    with results.open("a") as handle:  # the kill also cut the line being written
        handle.write('{"id": "q4", "predic')
    seen: list[int] = []
    resumed = run_hotpot(hotpot_dir, tmp_path, "killed", progress=lambda done, total: seen.append(done))
    assert seen[0] == 3  # three items were kept, three ran again
    assert resumed.summary["metrics"] == whole.summary["metrics"]
    assert [r["prediction"] for r in resumed.rows] == [r["prediction"] for r in whole.rows]
    assert len(results.read_text().splitlines()) == 6


def test_resuming_another_configuration_is_refused(hotpot_dir: Path, tmp_path: Path) -> None:
    run_hotpot(hotpot_dir, tmp_path, "same", limit=2)
    with pytest.raises(ValueError, match=r"another configuration.*limit"):
        run_hotpot(hotpot_dir, tmp_path, "same", limit=3)


def test_compare_reports_deltas_flips_and_gates(hotpot_dir: Path, tmp_path: Path) -> None:
    full = run_hotpot(hotpot_dir, tmp_path, "full")
    weak = evals.run(
        hotpot_dir,
        split="all",
        run_id="weak",
        runs_dir=tmp_path / "runs",
        embeddings=FakeEmbeddings(),
        settings=Settings(retrieval={"top_k": 1}, limits={"max_iterations": 1}),
    )
    same = evals.compare(full.dir, full.dir)
    assert not same["regressions"]
    assert all(m["delta"] == 0 for m in same["metrics"])
    diff = evals.compare(full.dir, weak.dir, metric="recall@5", threshold=0.0)
    row = next(m for m in diff["metrics"] if m["name"] == "recall@5")
    assert row["delta"] == pytest.approx(row["b"] - row["a"])
    assert row["ci_low"] <= row["delta"] <= row["ci_high"]
    if row["delta"] < 0:
        assert diff["regressions"] == ["recall@5"]
    with pytest.raises(ValueError, match="not in both runs"):
        evals.compare(full.dir, weak.dir, metric="bleu")


def test_compare_cli_exits_non_zero_on_a_regression(tmp_path: Path) -> None:
    a, b = _fake_run(tmp_path / "a", [1.0, 1.0, 0.0, 1.0]), _fake_run(tmp_path / "b", [0.0, 1.0, 0.0, 0.0])
    assert main(["eval", "compare", str(a), str(b), "--metric", "em", "--threshold", "0.1"]) == 1
    assert main(["eval", "compare", str(a), str(b), "--metric", "em", "--threshold", "0.6"]) == 0
    comparison = evals.compare(a, b, metric="em")
    assert comparison["metrics"][0]["delta"] == pytest.approx(-0.5)  # (0+1+0+0)/4 - (1+1+0+1)/4
    assert {f["id"] for f in comparison["flipped"]} == {"i0", "i3"}
    with pytest.raises(AssertionError, match=r"em: 0\.7500 -> 0\.2500"):
        evals.assert_no_regression(b, a, metric="em", threshold=0.1)
    assert evals.assert_no_regression(a, a, metric="em")["regressions"] == []


def _fake_run(folder: Path, ems: list[float]) -> Path:
    folder.mkdir(parents=True)
    rows = [{"id": f"i{i}", "question": f"q{i}", "answerable": True, "metrics": {"em": em}} for i, em in enumerate(ems)]
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"run_id": folder.name, "metrics": {"em": sum(ems) / len(ems)}}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_cli_eval_run_and_a_missing_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    essays = tmp_path / "data" / "long_context_niah_babilong" / "paul_graham_essays.jsonl"
    essays.parent.mkdir(parents=True)
    filler = "Startups grow by making something people want. Most founders underestimate how long it takes. "
    essays.write_text(json.dumps({"id": "e", "text": filler * 60}) + "\n")
    monkeypatch.setenv("ARAG_EVAL_DATA", str(tmp_path / "data"))  # the run does not depend on ../shared
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        evals.compare(tmp_path / "nothing", tmp_path / "nothing")
    code = main(["eval", "run", "--dataset", "niah", "--agent", "rlm", "--lengths", "20000", "--limit", "3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "em" in captured.out
    assert "wrote runs/" in captured.out
    rows = [json.loads(line) for line in next(Path("runs").glob("*/results.jsonl")).read_text().splitlines()]
    assert [r["metrics"]["em"] for r in rows] == [1.0, 1.0, 1.0]  # the offline RLM finds each needle
    assert all(r["context_chars"] > 20_000 and "context" not in r for r in rows)  # never the haystack itself


def test_agents_a_dataset_cannot_use_fail_with_a_fix(hotpot_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use niah or babilong"):
        run_hotpot(hotpot_dir, tmp_path, "x", agent="rlm")
    with pytest.raises(ValueError, match="needs a tool-calling chat model"):
        run_hotpot(hotpot_dir, tmp_path, "y", agent="react")
    with pytest.raises(ValueError, match="unknown agent"):
        run_hotpot(hotpot_dir, tmp_path, "z", agent="dspy")
    with pytest.raises(FileNotFoundError, match="no dataset"):
        load_dataset("nowhere")


def test_generic_jsonl_needs_a_source_and_valid_lines(tmp_path: Path) -> None:
    path = tmp_path / "questions.jsonl"
    path.write_text('{"id": "a", "question": "What?", "answer": "x", "gold_ids": ["d1"], "category": "c"}\n{oops\n')
    with pytest.raises(ValueError, match="--source NAME"):
        load_dataset(path)
    with pytest.raises(ValueError, match=r"questions.jsonl:2 is not valid JSON"):
        load_dataset(path, source="kb")
    path.write_text('{"id": "a", "question": "What?", "answers": ["x", "y"], "gold_ids": ["d1"]}\n')
    item = load_dataset(path, source="kb").items[0]
    assert item.answers == ("x", "y")
    assert item.gold_ids == ("d1",)


def test_item_metrics_by_kind() -> None:
    unanswerable = evals.EvalItem("u", "What is the capital of Atlantis?", answerable=False)
    abstained = item_metrics(unanswerable, {"prediction": "", "exit_reason": "abstained"}, "qa")
    assert abstained["em"] == 1.0
    assert abstained["abstained"] == 1.0
    answered = item_metrics(unanswerable, {"prediction": "Paris", "exit_reason": "answered"}, "qa")
    assert answered["em"] == 0.0
    assert answered["abstained"] == 0.0
    needle = item_metrics(
        evals.EvalItem("n", "magic number?", answers=("7251904",)),
        {"prediction": "The special magic number for walrus is 7251904.", "exit_reason": "answered"},
        "long",
    )
    assert needle["em"] == 1.0
    assert 0 < (needle["f1"] or 0) < 1


def test_an_llm_judge_is_repeated_and_its_spread_kept(hotpot_dir: Path, tmp_path: Path) -> None:
    judge = scripted(*(["yes", "no", "yes"] * 6))
    # The RAG agent uses the heuristic strategies here; the judge model only grades groundedness.
    result = run_hotpot(hotpot_dir, tmp_path, "judged", limit=2, judge_repeats=3, chat_model=None)
    assert "groundedness_judge" not in result.summary["metrics"]  # no model, no judge
    from evals.harness import _judge  # the judge on its own, with a scripted model
    from graphs.llm import ModelClient, RetryPolicy

    item = load_dataset(hotpot_dir, split="all").items[0]
    verdict = _judge(
        ModelClient(judge, RetryPolicy(max_attempts=1)), item, {"passages": ["p"], "prediction": "a"}, repeats=3
    )
    assert verdict["votes"] == [1.0, 0.0, 1.0]
    assert verdict["mean"] == pytest.approx(2 / 3)
    assert verdict["spread"] == pytest.approx(0.4714, abs=1e-4)


def test_the_search_baseline_and_the_agent_in_the_same_run(hotpot_dir: Path, tmp_path: Path) -> None:
    agent = run_hotpot(hotpot_dir, tmp_path, "agent")
    search = run_hotpot(hotpot_dir, tmp_path, "search", agent="search")
    for row in agent.rows:  # every agent item also holds one plain search of its question
        assert row["baseline_retrieved"]
        assert "search_all_gold@10" in row["metrics"]
    searched = {r["id"]: r["retrieved"] for r in search.rows}
    assert all(r["baseline_retrieved"] == searched[r["id"]] for r in agent.rows)  # the same search
    assert agent.summary["metrics"]["search_recall@10"] == search.summary["metrics"]["recall@10"]
    assert search.summary["per_node"].keys() == {"search", "answer"}
    q1 = next(r for r in agent.rows if r["id"] == "q1")
    assert q1["prediction"] == "20 July 1969"  # the short answer is scored ...
    assert q1["answer"].startswith("20 July 1969\n\n")  # ... and the whole answer kept
    assert q1["metrics"]["em"] == 1.0


def test_squad2_unseen_asks_questions_whose_article_is_not_ingested(tmp_path: Path) -> None:
    folder = tmp_path / "squad"
    folder.mkdir()
    rows = [
        {"id": f"{t}-{i}", "question": f"Q {t} {i}?", "answers": ["a"], "is_impossible": False,
         "gold_passage_id": f"{t}p", "title": t}
        for t in ("A", "B", "C", "D") for i in range(2)
    ]  # fmt: skip
    (folder / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = [{"_id": f"{t}p", "title": t, "text": f"About {t}."} for t in ("A", "B", "C", "D")]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    unseen = load_dataset(folder, split="unseen")
    test = load_dataset(folder, split="test")
    assert [i.id for i in unseen.items] == [i.id for i in test.items]  # the test half's questions
    assert all(not i.answerable and i.answers == () for i in unseen.items)
    assert unseen.corpus is not None
    assert [d.title for d in unseen.corpus()] == ["A", "B"]  # only the dev half's articles
    assert unseen.corpus_fingerprint() != test.corpus_fingerprint()  # so it gets its own store
