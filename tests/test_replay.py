"""evals/replay.py: the offline answerer answers a dev run's questions again from the evidence the
run recorded, scored by the harness's metrics; runs of test splits are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.replay import main, replay, summary

QUESTIONS = [
    ("q1", "Where was the designer of the Lumen bridge born?", "Tarn"),
    ("q2", "When did the Lumen bridge open?", "1902"),
    ("q3", "Who designed the Tarn tower?", "Bo Lin"),  # the test half: never replayed
    ("q4", "When was the Tarn tower finished?", "1931"),
]
EVIDENCE = [
    {"id": "hotpotqa/p1", "source": "hotpotqa", "doc_id": "p1", "title": "Lumen bridge",
     "text": "The Lumen bridge opened in 1902 and was designed by Ada Vell."},
    {"id": "hotpotqa/p2", "source": "hotpotqa", "doc_id": "p2", "title": "Ada Vell",
     "text": "Ada Vell was an engineer; she was born in 1889 in Tarn."},
]  # fmt: skip


def _dataset(root: Path) -> None:
    folder = root / "hotpotqa_dev_distractor"
    folder.mkdir(parents=True)
    rows = [
        {"_id": qid, "question": q, "answer": a, "type": "bridge", "supporting_facts": [["Lumen bridge", 0]],
         "context": [["Lumen bridge", [EVIDENCE[0]["text"]]], ["Ada Vell", [EVIDENCE[1]["text"]]]]}
        for qid, q, a in QUESTIONS
    ]  # fmt: skip
    (folder / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = [{"_id": e["doc_id"], "title": e["title"], "text": e["text"]} for e in EVIDENCE]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))


def _run(root: Path, split: str, *, evidence: bool = True) -> Path:
    run = root / f"run-{split}"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"dataset": {"name": "hotpotqa", "split": split}}))
    rows = []
    for qid, question, _ in QUESTIONS[:2]:
        row = {"id": qid, "question": question, "prediction": "something else", "metrics": {"f1": 0.0, "em": 0.0}}
        if evidence and qid == "q1":
            row["evidence"] = EVIDENCE
        rows.append(row)
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _dataset(tmp_path / "data")
    monkeypatch.setenv("ARAG_EVAL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("ARAG_DATA_DIR", str(tmp_path / "arag"))  # the embedding cache
    return tmp_path


def test_a_dev_run_is_answered_again_from_its_evidence(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(data, "dev")
    result = replay(run)
    assert result["without_evidence"] == 1  # q2 recorded none: counted, not scored
    [row] = result["rows"]
    assert row["now"] == "Tarn"  # the second hop through the bridge "Ada Vell"
    assert row["metrics"]["f1"] == 1.0
    report = summary(result)
    assert report["recorded"]["f1"] == 0.0
    assert report["replayed"]["f1"] == 1.0
    assert report["by_kind"]["place"]["n"] == 1
    out = data / "replay.json"
    assert main([str(run), "--json", str(out), "--show", "5"]) == 0
    assert main([str(run), "--diff", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 questions replayed (1 without recorded evidence)" in printed
    assert "0 answers changed" in printed


def test_a_run_of_a_test_split_is_refused(data: Path) -> None:
    with pytest.raises(SystemExit, match="only dev splits"):
        replay(_run(data, "test"))
