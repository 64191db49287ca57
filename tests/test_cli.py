"""The ``arag`` command line, in-process (fast) and as a real console script (a few checks)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agents.cli import main
from tests.conftest import make_pdf

pytestmark = pytest.mark.model  # the CLI embeds with the real local model


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("ingest", "search", "sources", "ask", "eval"):
        assert command in out
    for command in (["ingest"], ["search"], ["sources"], ["ask"], ["eval", "retrieval"]):
        code, out, _ = run(capsys, *command, "--help")
        assert code == 0, command
        assert "Usage" in out


def test_ingest_sources_search_ask(capsys: pytest.CaptureFixture[str], corpus_dir: Path) -> None:
    code, out, err = run(capsys, "ingest", corpus_dir, "--source", "kb", "-d", "General facts", "-q")
    assert code == 0, err
    assert "kb: 6/6 files" in out
    assert "0 unchanged" in out

    code, out, _ = run(capsys, "sources")
    assert code == 0
    assert "kb" in out
    assert "General facts" in out

    code, out, _ = run(capsys, "search", "How tall is the Eiffel Tower?", "--json", "-k", "3")
    assert code == 0
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert len(rows) == 3
    assert "Eiffel" in rows[0]["text"]
    assert rows[0]["source"] == "kb"
    assert set(rows[0]) >= {"id", "score", "doc_id", "title", "path", "chunk_index", "metadata"}

    for mode in ("dense", "sparse", "hybrid"):
        code, out, _ = run(capsys, "search", "emperor penguins breed", "--mode", mode, "-k", "1")
        assert code == 0
        assert "Penguins" in out, mode

    code, out, _ = run(capsys, "ask", "How tall is the Eiffel Tower?")
    assert code == 0
    assert "330 metres" in out
    assert "[1]" in out
    assert "extractive" in out

    code, out, _ = run(capsys, "ingest", corpus_dir, "--source", "kb", "-q")
    assert code == 0
    assert " 0 added" in out


def test_ask_abstains_without_evidence(capsys: pytest.CaptureFixture[str], corpus_dir: Path) -> None:
    run(capsys, "ingest", corpus_dir / "notes.txt", "--source", "kb", "-q")
    code, out, _ = run(capsys, "ask", "zxqv wubbalubba?")
    assert code == 0
    assert "abstained" in out


def test_ask_trace_json_and_threads(capsys: pytest.CaptureFixture[str], corpus_dir: Path) -> None:
    run(capsys, "ingest", corpus_dir, "--source", "kb", "-q")
    code, out, _ = run(capsys, "ask", "How tall is the Eiffel Tower?", "--trace")
    assert code == 0
    for node in ("analyze", "select_sources", "retrieve", "grade", "answer", "validate", "finish"):
        assert node in out, node
    code, out, _ = run(capsys, "ask", "How tall is the Eiffel Tower?", "--json", "--thread", "t1")
    assert code == 0
    result = json.loads(out)
    assert result["exit_reason"] == "answered"
    assert result["citations"][0]["number"] == 1
    assert result["citations"][0]["source"] == "kb"
    assert result["thread_id"] == "t1"
    assert result["usage"]["model_calls"] == 0
    code, out, _ = run(capsys, "ask", "When was it built?", "--json", "--thread", "t1")
    assert "Eiffel" in json.loads(out)["standalone_question"]  # the follow-up borrowed its subject
    code, _, err = run(capsys, "ask", "anything", "--source", "missing")
    assert code == 1
    assert "missing" in err


def test_chat_keeps_a_thread(
    capsys: pytest.CaptureFixture[str], corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, "ingest", corpus_dir, "--source", "kb", "-q")
    lines = iter(["How tall is the Eiffel Tower?", "", "When was it built?", "/new", "/exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    code, out, err = run(capsys, "chat")
    assert code == 0
    assert "330 metres" in out
    assert "understood as" in out  # the follow-up was rewritten with the thread's subject
    assert "new thread" in err


def test_ingest_names_bad_files_and_keeps_the_rest(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.txt").write_text("Tides are caused by the Moon.")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R >>\ngarbage")
    (folder / "blob.txt").write_bytes(bytes(range(256)) * 4)
    code, out, err = run(capsys, "ingest", folder, "--source", "kb", "-q")
    assert code == 0
    assert "broken.pdf" in err
    assert "blob.txt" in err
    assert "1 added" in out


def test_ingest_says_what_it_skipped_and_sync_what_it_removed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "repo-docs"
    (folder / ".github").mkdir(parents=True)
    (folder / ".github" / "THREAT_MODEL.md").write_text("# Threat model\n\nAttackers own the network.\n")
    (folder / "guide.md").write_text("# Guide\n\nPress Rotate to rotate keys.\n")
    (folder / "old.md").write_text("# Old\n\nDeprecated steps.\n")
    (folder / ".gitignore").write_text("build/\n")
    (folder / "build").mkdir()
    (folder / "build" / "out.md").write_text("# Built\n")
    code, out, err = run(capsys, "ingest", folder, "--source", "docs", "-q")
    assert code == 0
    assert "docs: 2/2 files" in out
    assert "skipped: 1 hidden (use --hidden), 1 ignored by .gitignore (use --no-gitignore)" in out
    assert ".github/: hidden; use --hidden" in err

    code, out, err = run(capsys, "ingest", folder, "--source", "docs", "--hidden", "-q")
    assert "docs: 3/3 files" in out
    (folder / "old.md").unlink()
    code, out, err = run(capsys, "ingest", folder, "--source", "docs", "--hidden", "-q")
    assert "1 files of docs under these folders are gone" in err
    assert "--sync" in err
    code, out, err = run(capsys, "ingest", folder, "--source", "docs", "--hidden", "--sync", "-q")
    assert code == 0
    assert "old.md (1 chunks): no longer under the given paths" in err
    assert "1 removed (1 files gone)" in out
    code, out, _ = run(capsys, "search", "deprecated steps", "--source", "docs", "--json")
    assert "old.md" not in out


def test_citations_and_results_say_the_page(capsys: pytest.CaptureFixture[str], corpus_dir: Path) -> None:
    run(capsys, "ingest", corpus_dir / "paper.pdf", "--source", "papers", "-q")
    code, out, _ = run(capsys, "ask", "Can qubits be entangled?", "--json")
    assert code == 0
    [first, *_] = json.loads(out)["citations"]
    assert first["location"] == "page 2"
    code, out, _ = run(capsys, "search", "qubits entangled", "-k", "1")
    assert "paper, page 2" in out


def test_search_output_strips_terminal_escape_sequences(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    note = tmp_path / "\x1b]0;title\x07evil.txt"
    note.write_text("Obsidian is volcanic glass.\x1b[2J\x1b]0;pwned\x07 It fractures sharply.\x9b31m")
    code, _, err = run(capsys, "ingest", note, "--source", "kb", "-q")
    assert code == 0, err
    for extra in ([], ["--json"]):
        code, out, _ = run(capsys, "search", "volcanic glass", *extra)
        assert code == 0
        assert "Obsidian is volcanic glass." in out
        assert "\x1b" not in out
        assert "\x9b" not in out
        assert "\x07" not in out
    code, out, _ = run(capsys, "ask", "What is obsidian?")
    assert "\x1b" not in out
    assert "\x07" not in out


def test_ingest_of_only_bad_files_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "empty.md").write_text("   \n")
    make_pdf(tmp_path / "scan.pdf", [""])
    code, _, err = run(capsys, "ingest", tmp_path / "empty.md", tmp_path / "scan.pdf", "--source", "kb", "-q")
    assert code == 1
    assert "empty.md" in err
    assert "scan.pdf" in err
    assert "nothing could be ingested" in err


def test_errors_are_one_line_unless_debug(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "search", "anything", "--source", "nope")
    assert code == 1
    assert err.strip().startswith("error:")
    assert "arag ingest" in err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1

    with pytest.raises(LookupError):
        main(["--debug", "search", "anything"])


def test_usage_errors(capsys: pytest.CaptureFixture[str], corpus_dir: Path) -> None:
    code, _, err = run(capsys, "search", "x", "--mode", "fuzzy")
    assert code == 2
    assert "dense, sparse, hybrid" in err
    code, _, err = run(capsys, "ingest", corpus_dir, "--source", "kb", "--meta", "novalue")
    assert code == 2
    assert "KEY=VALUE" in err
    code, _, err = run(capsys, "ingest", corpus_dir, "--source", "bad name!")
    assert code == 1
    assert "invalid source name" in err


def test_invalid_settings_name_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARAG_CHUNK_OVERLAP", "5000")
    code, _, err = run(capsys, "sources")
    assert code == 1
    assert "ARAG_CHUNK_OVERLAP" in err


def test_delete_source(capsys: pytest.CaptureFixture[str], corpus_dir: Path) -> None:
    run(capsys, "ingest", corpus_dir / "notes.txt", "--source", "kb", "-q")
    code, out, _ = run(capsys, "sources", "--delete", "kb", "--yes")
    assert code == 0
    code, out, _ = run(capsys, "sources")
    assert "no sources yet" in out


@pytest.mark.parametrize("backend", ["embedded", "local"])
def test_store_held_by_another_process(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setenv("ARAG_STORE_BACKEND", backend)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                from agents import Settings, build_store
                store = build_store(Settings())
                print("open", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        code, _, err = run(capsys, "sources")
        assert code == 1
        assert "another process" in err
        assert "ARAG_QDRANT_URL" in err
    finally:
        holder.communicate("", timeout=30)


def _tiny_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    docs = {
        "d1": ("Eiffel Tower", "The Eiffel Tower in Paris is 330 metres tall."),
        "d2": ("Penguins", "Emperor penguins breed during the Antarctic winter."),
        "d3": ("Volcanoes", "Mount Etna in Sicily is one of the most active volcanoes."),
        "d4": ("Tides", "Ocean tides are caused by the gravity of the Moon and the Sun."),
    }
    with (root / "corpus.jsonl").open("w") as handle:
        for doc_id, (title, text) in docs.items():
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    queries = {
        "q1": "How tall is the tower in Paris?",
        "q2": "When do emperor penguins breed?",
        "q3": "What causes tides?",
    }
    with (root / "queries.jsonl").open("w") as handle:
        for qid, text in queries.items():
            handle.write(json.dumps({"_id": qid, "text": text, "metadata": {}}) + "\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td4\t1\n")
    return root


def test_eval_retrieval_writes_json_by_mode(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    dataset = _tiny_beir(tmp_path / "tiny")
    report = tmp_path / "out" / "retrieval.json"
    code, out, err = run(capsys, "eval", "retrieval", "--dataset", dataset, "--json", report, "-q")
    assert code == 0, err
    numbers = json.loads(report.read_text())
    for mode in ("dense", "sparse", "hybrid"):
        assert numbers[mode]["ndcg@10"] == pytest.approx(1.0)
        assert numbers[mode]["recall@100"] == pytest.approx(1.0)
        assert numbers[mode]["mrr@10"] == pytest.approx(1.0)
        assert numbers[mode]["latency_ms_p50"] > 0
    assert numbers["ingest"]["chunks"] == 4
    assert numbers["ingest"]["model_seconds"] > 0
    assert "pipeline/model" in out

    # The second run reuses the ingested corpus: same ingest record, same numbers.
    code, _, _ = run(capsys, "eval", "retrieval", "--dataset", dataset, "--json", report, "--modes", "sparse", "-q")
    assert code == 0
    again = json.loads(report.read_text())
    assert again["ingest"]["measured_at"] == numbers["ingest"]["measured_at"]
    assert set(again) == {"sparse", "ingest", "run"}

    code, out, _ = run(
        capsys, "eval", "retrieval", "--dataset", dataset, "--fresh", "--no-time-model", "--json", report, "-q"
    )
    assert code == 0
    assert "the model alone was not timed" in out
    rebuilt = json.loads(report.read_text())
    assert rebuilt["ingest"]["ratio"] is None
    assert rebuilt["ingest"]["measured_at"] >= numbers["ingest"]["measured_at"]

    code, _, err = run(capsys, "eval", "retrieval", "--dataset", dataset, "--split", "dev")
    assert code == 1
    assert "splits here: test" in err


def test_console_script_runs(tmp_path: Path) -> None:
    arag = Path(sys.executable).parent / "arag"
    result = subprocess.run([str(arag), "sources"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "no sources yet" in result.stdout


def test_watch_command_syncs_then_follows_changes_until_interrupted(tmp_path: Path) -> None:
    import os
    import select
    import signal
    import time

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "tides.md").write_text("# Tides\n\nTides are caused by the Moon.\n")
    arag = Path(sys.executable).parent / "arag"
    env = {**os.environ, "ARAG_EMBEDDING_CACHE": "false"}
    watcher = subprocess.Popen(
        [str(arag), "watch", str(folder), "--source", "notes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    lines: list[str] = []
    pending = b""

    def read_until(needle: str, timeout: float) -> bool:
        # Raw reads, not readline: a buffered readline can swallow two lines while select() then
        # sees nothing more on the pipe and the second line is never looked at.
        nonlocal pending
        assert watcher.stdout is not None
        fd = watcher.stdout.fileno()
        deadline = time.monotonic() + timeout
        while not any(needle in line for line in lines):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not select.select([fd], [], [], min(left, 0.5))[0]:
                continue
            piece = os.read(fd, 65536)
            if not piece:
                return False
            pending += piece
            *complete, pending = pending.split(b"\n")
            lines.extend(line.decode("utf-8", "replace") + "\n" for line in complete)
        return True

    try:
        assert read_until("watching", 120), "".join(lines)
        assert any("notes: 1/1 files" in line for line in lines)
        (folder / "moon.md").write_text("# Moon\n\nThe Moon orbits the Earth every 27 days.\n")
        assert read_until("notes: 2/2 files", 30), "".join(lines)
        (folder / "tides.md").unlink()
        assert read_until("tides.md (1 chunks): no longer under the given paths", 30), "".join(lines)
    finally:
        watcher.send_signal(signal.SIGINT)
        code = watcher.wait(timeout=30)
    assert code == 0, "".join(lines)
    assert "Traceback" not in "".join(lines)
    result = subprocess.run(
        [str(arag), "search", "Moon orbit", "--json"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert "moon.md" in result.stdout
    assert "tides.md" not in result.stdout
