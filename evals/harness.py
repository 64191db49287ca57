"""Run an agent over a dataset and keep everything needed to trust and compare the run.

```python
import evals

run = evals.run("hotpotqa", agent="rag", limit=100)          # runs/<id>/: results, manifest, report
print(run.summary["metrics"]["f1"], run.report_html)
diff = evals.compare(run.dir, "runs/baseline", metric="f1", threshold=0.02)
assert not diff["regressions"]
```

A run directory holds ``results.jsonl`` (one line per item, appended as items finish, so a killed
run resumes where it stopped), ``manifest.json`` (what was run: dataset and corpus hashes,
settings, model, package version, git commit, seed), ``summary.json`` and ``report.md`` /
``report.html``. Items run concurrently; results are kept in dataset order, so a run is
reproducible whatever the concurrency.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import random
import statistics
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.messages import HumanMessage

from agents.build import build_rag_agent, build_react_agent, build_rlm_agent, retry_policy
from agents.components import build_embeddings, build_ingestor, build_retriever, build_store
from agents.models import build_chat_model
from agents.rag_agent import RagAgent
from agents.react_agent import ReactAgent
from agents.rlm_agent import RlmAgent
from agents.settings import Settings
from evals import answer_metrics as am
from evals.datasets import EvalDataset, EvalItem, load_dataset
from evals.metrics import mrr_at_k, ndcg_at_k, percentile
from evals.report import render_compare_markdown, write_report
from graphs.budget import Budget, Limits
from graphs.heuristic import HeuristicAnswerer
from graphs.llm import ModelClient
from tools.embeddings import model_identity
from tools.retrieval import Retriever
from tools.store import EdgeStore, VectorStore

__all__ = ["AGENTS", "RunResult", "assert_no_regression", "compare", "load_run", "run", "summarize"]

AGENTS = ("rag", "search", "react", "rlm")
"""``search`` is the baseline: one hybrid search of the question, no loop, the offline answerer
on its hits. Every ``rag`` and ``react`` run also records that search per item, so its report
shows the agent's gain over plain retrieval in the same run (metrics prefixed ``search_``)."""
BASELINE_K = 10
Progress = Callable[[int, int], None]
"""``(done, total)`` items."""

_SECRET_SETTINGS = ("openai_api_key", "qdrant_api_key")


@dataclass(frozen=True, slots=True)
class RunResult:
    dir: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def report_html(self) -> Path:
        return self.dir / "report.html"


# -- running --------------------------------------------------------------------------------------


def run(
    dataset: str | Path | EvalDataset,
    *,
    agent: str = "rag",
    settings: Settings | None = None,
    split: str | None = None,
    source: str | None = None,
    lengths: Sequence[int] = (100_000,),
    limit: int | None = None,
    concurrency: int = 1,
    run_id: str | None = None,
    runs_dir: Path = Path("runs"),
    seed: int = 0,
    judge_repeats: int = 3,
    progress: Progress | None = None,
    chat_model: Any = None,
    embeddings: Embeddings | None = None,
) -> RunResult:
    """Run ``agent`` over the dataset's items (the first ``limit``), resuming ``run_id`` if it exists.

    Raises:
        ValueError: Unknown agent, an agent the dataset cannot use, or a ``run_id`` that exists for
            another dataset or configuration.
    """
    if agent not in AGENTS:
        msg = f"unknown agent {agent!r}; use one of {', '.join(AGENTS)}"
        raise ValueError(msg)
    if concurrency < 1:
        msg = f"concurrency must be >= 1, got {concurrency}"
        raise ValueError(msg)
    settings = settings or Settings()
    data = dataset if isinstance(dataset, EvalDataset) else load_dataset(
        dataset, split=split, source=source, lengths=lengths, seed=seed
    )  # fmt: skip
    items = data.items[:limit] if limit else data.items
    if agent == "rlm" and data.kind != "long":
        msg = f"the rlm agent answers over a long context; {data.name} has none (use niah or babilong)"
        raise ValueError(msg)
    if agent != "rlm" and data.kind == "long":
        msg = f"{data.name} items carry their own long context: run them with --agent rlm"
        raise ValueError(msg)
    model = chat_model if chat_model is not None else build_chat_model(settings)
    manifest = _manifest(data, items, agent, settings, model, seed, limit)
    run_dir = runs_dir / (run_id or _run_id(manifest))
    done = _resume(run_dir, manifest)
    todo = [item for item in items if item.id not in done]
    judge = ModelClient(model, retry_policy(settings)) if model is not None else None
    with ExitStack() as stack:
        answer = _agent(stack, agent, data, settings, model, embeddings) if todo else None
        lock = threading.Lock()
        with (run_dir / "results.jsonl").open("a", encoding="utf-8") as out:
            finished = len(done)
            if progress:
                progress(finished, len(items))
            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="arag-eval") as pool:
                futures = [pool.submit(_run_item, answer, item, data, judge, judge_repeats) for item in todo]
                for future in as_completed(futures):
                    row = future.result()
                    with lock:
                        out.write(json.dumps(row, ensure_ascii=False) + "\n")
                        out.flush()
                        done[row["id"]] = row
                        finished += 1
                    if progress:
                        progress(finished, len(items))
    rows = [done[item.id] for item in items]
    summary = summarize(rows, manifest, run_dir.name)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    write_report(run_dir, summary, rows)
    return RunResult(run_dir, summary, rows)


def _run_id(manifest: dict[str, Any]) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    config = hashlib.sha256(json.dumps(_identity(manifest), sort_keys=True).encode()).hexdigest()[:8]
    return f"{stamp}-{manifest['dataset']['name']}-{manifest['agent']}-{config}"


def _identity(manifest: dict[str, Any]) -> dict[str, Any]:
    """What must match for a run to be resumed: everything but when and where it ran."""
    keep = ("dataset", "corpus_hash", "agent", "settings", "model", "seed", "limit")
    return {k: manifest[k] for k in keep}


def _resume(run_dir: Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The rows already finished in ``run_dir`` (after checking it is the same run); creates it if new."""
    path = run_dir / "manifest.json"
    if path.is_file():
        existing = json.loads(path.read_text())
        if _identity(existing) != _identity(manifest):
            changed = sorted(k for k, v in _identity(manifest).items() if existing.get(k) != v)
            msg = f"{run_dir} is a run of another configuration ({', '.join(changed)} differ); use a new --run-id"
            raise ValueError(msg)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    done: dict[str, dict[str, Any]] = {}
    results = run_dir / "results.jsonl"
    if results.is_file():
        lines = results.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = []
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut off when the run was killed: that item runs again
            done[row["id"]] = row
            kept.append(line if line.endswith("\n") else line + "\n")
        if len(kept) != len(lines):
            results.write_text("".join(kept), encoding="utf-8")
    return done


def _manifest(
    data: EvalDataset,
    items: Sequence[EvalItem],
    agent: str,
    settings: Settings,
    model: Any,
    seed: int,
    limit: int | None,
) -> dict[str, Any]:
    values = settings.flat_dump()  # flat names: manifests compare across versions
    for key in _SECRET_SETTINGS:
        values[key] = "***" if values.get(key) else None
    for key in ("data_dir", "qdrant_path", "edge_path", "threads_path"):
        values.pop(key, None)  # where files live is not what was measured
    return {
        "dataset": {
            "name": data.name,
            "split": data.split,
            "kind": data.kind,
            "items": len(items),
            "fingerprint": data.fingerprint(),
            "params": data.params,
        },
        "corpus_hash": data.corpus_fingerprint(),
        "agent": agent,
        "settings": values,
        "model": getattr(model, "model_name", None) or getattr(model, "model", None) or "heuristic (no model)",
        "seed": seed,
        "limit": limit,
        "package_version": _version(),
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _version() -> str:
    try:
        return metadata.version("agentic-rag")
    except metadata.PackageNotFoundError:
        return "unknown"


def _git_commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


# -- agents ---------------------------------------------------------------------------------------

Answer = Callable[[EvalItem], dict[str, Any]]


def _agent(
    stack: ExitStack, agent: str, data: EvalDataset, settings: Settings, model: Any, embeddings: Embeddings | None
) -> Answer:
    """A function answering one item with the chosen agent, as a plain record."""
    if agent == "rlm":
        rlm = build_rlm_agent(settings, chat_model=model)
        return lambda item: _rlm_record(rlm, item)
    retriever = _retriever(stack, data, settings, embeddings or build_embeddings(settings))
    if agent == "search":
        answerer = HeuristicAnswerer(retriever.embeddings)
        return lambda item: _search_record(retriever, answerer, item)
    if agent == "rag":
        rag = build_rag_agent(settings, retriever, chat_model=model)
        return lambda item: {**_rag_record(rag, item), "baseline": _baseline(retriever, item)}
    if model is None:
        msg = "the react agent needs a tool-calling chat model: set ARAG_CHAT_MODEL (or use --agent rag)"
        raise ValueError(msg)
    react = build_react_agent(settings, model, retriever)
    return lambda item: {**_react_record(react, item), "baseline": _baseline(retriever, item)}


def _baseline(retriever: Retriever, item: EvalItem) -> list[str]:
    """The documents one search of the question ranks first (the ``search`` agent's retrieval)."""
    if not item.gold_ids:
        return []
    return list(dict.fromkeys(h.doc_id for h in retriever.search(item.question, k=BASELINE_K)))


def _search_record(retriever: Retriever, answerer: HeuristicAnswerer, item: EvalItem) -> dict[str, Any]:
    started = time.perf_counter()
    hits = retriever.search(item.question, k=BASELINE_K)
    searched = time.perf_counter()
    draft = answerer.answer(item.question, hits[:8], [], Budget())
    by_id = {h.id: h for h in hits}
    cited = [by_id[c] for c in draft.citations if c in by_id]
    return {
        "prediction": draft.short or draft.text,
        "said": draft.text,
        "exit_reason": "abstained" if draft.abstained else "answered",
        "error": None,
        "usage": {},
        "steps": 1,
        "nodes": {"search": searched - started, "answer": time.perf_counter() - searched},
        "tool_errors": 0,
        "retrieved": list(dict.fromkeys(h.doc_id for h in hits)),
        "cited": [c.doc_id for c in cited],
        "cited_titles": [c.title for c in cited],
        "passages": [c.text for c in cited] or [h.text for h in hits[:8]],
    }


def _retriever(stack: ExitStack, data: EvalDataset, settings: Settings, embeddings: Embeddings) -> Retriever:
    """The dataset's corpus in its own embedded store (ingested once, then reused), or the user's
    store for a dataset asked against an existing source."""
    store: VectorStore
    if data.corpus is None:
        store = stack.enter_context(build_store(settings))
        store.get_source(data.source)  # an unknown source fails now, naming the ones there are
    else:
        model = "".join(ch if ch.isalnum() else "-" for ch in model_identity(embeddings))[:60]
        chunking = f"c{settings.ingest.chunk_size}o{settings.ingest.chunk_overlap}"
        name = f"{data.name}-{data.corpus_fingerprint()[:12]}-{chunking}-{model}"
        folder = settings.store.data_dir / "evals" / name
        store = stack.enter_context(EdgeStore(folder / "edge", index_threshold=settings.store.index_threshold))
        marker = folder / "ingested.json"
        if not marker.is_file():
            report = build_ingestor(settings, store, embeddings).ingest_documents(list(data.corpus()), data.source)
            if report.problems:
                msg = f"ingesting {data.name} failed for some documents: {report.problems[:3]}"
                raise RuntimeError(msg)
            store.refresh_index(data.source)
            marker.write_text(json.dumps({"documents": report.documents, "chunks": report.chunks}) + "\n")
    retriever = build_retriever(settings, store, embeddings)
    retriever.sources = [data.source]
    return retriever


def _rag_record(agent: RagAgent, item: EvalItem) -> dict[str, Any]:
    result = agent.invoke(item.question)
    nodes: dict[str, float] = defaultdict(float)
    for step in result.steps:
        nodes[step["node"]] += step.get("ms", 0.0) / 1000
    return {
        "prediction": result.short_answer or result.answer,
        "said": result.answer,
        "exit_reason": result.exit_reason,
        "error": result.error,
        "usage": result.usage,
        "steps": len(result.steps),
        "nodes": dict(nodes),
        "tool_errors": 0,
        "retrieved": [r.split("/", 1)[1] for r in result.retrieved],
        "cited": [c.doc_id for c in result.citations],
        "cited_titles": [c.title for c in result.citations],
        "passages": [c.text for c in result.citations] or [e["text"] for e in result.evidence],
        "evidence": result.evidence,
    }


def _react_record(agent: ReactAgent, item: EvalItem) -> dict[str, Any]:
    result = agent.invoke(item.question)
    nodes: dict[str, float] = defaultdict(float)
    for call in result.tool_calls:
        nodes[f"tool:{call['tool']}"] += call.get("ms", 0.0) / 1000
    return {
        "prediction": result.answer,
        "exit_reason": result.exit_reason,
        "error": result.error,
        "usage": result.usage,
        "steps": len(result.tool_calls),
        "nodes": dict(nodes),
        "tool_errors": sum(1 for c in result.tool_calls if c.get("status") != "success"),
        "retrieved": [],
        "cited": [],
        "cited_titles": [],
        "passages": [],
    }


def _rlm_record(agent: RlmAgent, item: EvalItem) -> dict[str, Any]:
    assert item.make_context is not None  # long datasets make their contexts
    context = item.make_context()
    result = agent.invoke(item.question, context=context)
    nodes: dict[str, float] = defaultdict(float)
    for call in result.trace:
        if call.get("kind") != "run":
            nodes[str(call.get("kind"))] += call.get("ms", 0.0) / 1000
    return {
        "prediction": result.short_answer or result.answer,
        "said": result.answer,
        "exit_reason": result.exit_reason,
        "error": result.error,
        "usage": result.usage,
        "steps": result.usage.get("sub_calls", 0),
        "nodes": dict(nodes),
        "tool_errors": sum(1 for c in result.trace if c.get("status") == "error"),
        "retrieved": [],
        "cited": [],
        "cited_titles": [],
        "passages": [],
        "context_chars": len(context),
        "context_sha256": hashlib.sha256(context.encode()).hexdigest()[:16],
    }


def _run_item(
    answer: Answer | None, item: EvalItem, data: EvalDataset, judge: ModelClient | None, repeats: int
) -> dict[str, Any]:
    assert answer is not None  # only called when there is work
    started = time.perf_counter()
    try:
        record = answer(item)
    except Exception as exc:
        record = {"prediction": "", "exit_reason": "error", "error": f"{type(exc).__name__}: {exc}", "usage": {}}
    latency = time.perf_counter() - started
    usage = record.get("usage") or {}
    row = {
        **item.as_dict(),
        "prediction": record["prediction"],
        "exit_reason": record["exit_reason"],
        "error": record.get("error"),
        "latency_s": round(latency, 4),
        "model_calls": int(usage.get("model_calls", 0)),
        "tokens": int(usage.get("total_tokens", usage.get("tokens", 0)) or 0),
        "steps": record.get("steps", 0),
        "tool_errors": record.get("tool_errors", 0),
        "nodes": {k: round(v, 4) for k, v in (record.get("nodes") or {}).items()},
        "retrieved": record.get("retrieved", [])[:100],
        "cited": record.get("cited", []),
    }
    if record.get("said") and record["said"] != record["prediction"]:
        row["answer"] = record["said"]  # the whole answer; ``prediction`` is the short one scored
    if record.get("baseline"):
        row["baseline_retrieved"] = record["baseline"]
    if record.get("evidence"):
        row["evidence"] = record["evidence"]  # what the answer was drawn from: evals/replay.py reads it
    for key in ("context_chars", "context_sha256"):
        if key in record:
            row[key] = record[key]
    row["metrics"] = item_metrics(item, record, data.kind)
    if judge is not None and record.get("passages") and record["prediction"]:
        row["judge"] = _judge(judge, item, record, repeats)
        row["metrics"]["groundedness_judge"] = row["judge"]["mean"]
    return row


# -- metrics --------------------------------------------------------------------------------------


def item_metrics(item: EvalItem, record: dict[str, Any], kind: str) -> dict[str, float | None]:
    """The metrics one item supports, from the agent's record."""
    prediction = str(record.get("prediction") or "")
    abstained = record.get("exit_reason") == "abstained" or am.is_abstention(prediction)
    metrics: dict[str, float | None] = {}
    if kind != "retrieval":
        said = "" if abstained else prediction
        if item.supporting_facts:  # HotpotQA: its own answer F1 (yes/no rule)
            metrics["em"] = am.exact_match(said, item.answers)
            metrics["f1"] = am.hotpot_f1(said, item.answers[0])[0] if item.answers else None
        elif kind == "long":  # exact answers inside a sentence: is the answer in what was said?
            metrics["em"] = float(any(am.normalize_answer(a) in am.normalize_answer(said) for a in item.answers))
            metrics["f1"] = am.f1_score(said, item.answers)
        else:
            metrics["em"] = am.exact_match(said, item.answers)
            metrics["f1"] = am.f1_score(said, item.answers)
        metrics["abstained"] = float(abstained)
    gold = set(item.gold_ids)
    for prefix, key in (("", "retrieved"), ("search_", "baseline")):
        retrieved = list(record.get(key) or [])
        if gold and retrieved:
            relevant = dict.fromkeys(gold, 1)
            for k in (5, 10):
                metrics[f"{prefix}recall@{k}"] = am.recall_ids_at_k(retrieved, gold, k)
                metrics[f"{prefix}all_gold@{k}"] = am.all_gold_found_at_k(retrieved, gold, k)
            metrics[f"{prefix}ndcg@10"] = ndcg_at_k(retrieved, relevant, 10)
            metrics[f"{prefix}mrr@10"] = mrr_at_k(retrieved, relevant, 10)
    cited = list(record.get("cited") or [])
    if gold and kind != "retrieval":
        scores = am.citation_scores(cited, gold)
        metrics["citation_precision"] = scores["precision"]
        metrics["citation_recall"] = scores["recall"]
    if item.supporting_facts:
        predicted = _predicted_facts(item, record)
        metrics["sp_f1"] = am.supporting_fact_scores(predicted, item.supporting_facts)["f1"]
    passages = record.get("passages") or []
    if passages and prediction and not abstained:
        metrics["groundedness"] = am.lexical_groundedness(str(record.get("said") or prediction), passages)
    return metrics


def _predicted_facts(item: EvalItem, record: dict[str, Any]) -> list[tuple[str, int]]:
    """Supporting facts an agent that cites passages (not sentences) points at: in each cited
    paragraph, the sentences that share a content word with the answer (else its best sentence
    for the question)."""
    answer_terms = set(am.normalize_answer(str(record.get("prediction", ""))).split())
    question_terms = set(am.normalize_answer(item.question).split())
    facts: list[tuple[str, int]] = []
    for title in dict.fromkeys(record.get("cited_titles") or []):
        sentences = item.sentences.get(title, [])
        if not sentences:
            continue
        tokens = [set(am.normalize_answer(s).split()) for s in sentences]
        hits = [i for i, t in enumerate(tokens) if t & answer_terms - question_terms]
        if not hits:
            hits = [max(range(len(tokens)), key=lambda i: len(tokens[i] & question_terms))]
        facts += [(title, i) for i in hits]
    return facts


_JUDGE_PROMPT = """Passages:
{passages}

Answer: {answer}

Is every claim of the answer supported by the passages? Reply with one word: yes or no."""


def _judge(client: ModelClient, item: EvalItem, record: dict[str, Any], repeats: int) -> dict[str, Any]:
    """An LLM judge of groundedness, asked ``repeats`` times; the mean and the spread are kept."""
    passages = "\n\n".join(f"[{i}] {p[:1500]}" for i, p in enumerate(record["passages"][:8], 1))
    prompt = _JUDGE_PROMPT.format(passages=passages, answer=record["prediction"])
    votes: list[float] = []
    failures: list[str] = []
    budget = Budget(Limits(max_model_calls=repeats, max_tokens=None, deadline_s=None))
    for _ in range(max(1, repeats)):
        try:
            reply = client.invoke([HumanMessage(prompt)], budget, tags=["judge"])
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            continue
        text = str(reply.content).strip().lower()
        votes.append(1.0 if text.startswith("yes") else 0.0)
    mean = statistics.fmean(votes) if votes else None
    spread = statistics.pstdev(votes) if len(votes) > 1 else 0.0
    return {"votes": votes, "mean": mean, "spread": spread, "failures": failures}


def summarize(rows: Sequence[dict[str, Any]], manifest: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Means of every metric, per category, cost and latency, exit reasons, per-node cost."""
    names = list(dict.fromkeys(name for row in rows for name in row.get("metrics", {})))
    metrics = {n: am.mean_defined(r["metrics"].get(n) for r in rows) for n in names}
    if any("abstained" in r.get("metrics", {}) for r in rows) and any(not r["answerable"] for r in rows):
        scores = am.abstention_scores([(bool(r["metrics"].get("abstained")), bool(r["answerable"])) for r in rows])
        metrics["abstention_precision"] = scores["precision"]
        metrics["abstention_recall"] = scores["recall"]
    categories: dict[str, dict[str, Any]] = {}
    for category in sorted({r.get("category", "") for r in rows}):
        members = [r for r in rows if r.get("category", "") == category]
        categories[category or "(none)"] = {
            "n": len(members),
            **{n: am.mean_defined(r["metrics"].get(n) for r in members) for n in names},
        }
    latencies = [float(r["latency_s"]) for r in rows]
    per_node: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        for node, seconds in row.get("nodes", {}).items():
            per_node[node].append(float(seconds))
    judged = [r["judge"]["spread"] for r in rows if r.get("judge")]
    return {
        "run_id": run_id,
        "dataset": manifest["dataset"],
        "agent": manifest["agent"],
        "created": manifest["created"],
        "metrics": metrics,
        "categories": categories,
        "latency": {
            "p50": round(percentile(latencies, 50), 4) if latencies else None,
            "p95": round(percentile(latencies, 95), 4) if latencies else None,
            "mean": round(statistics.fmean(latencies), 4) if latencies else None,
        },
        "cost": {
            "model_calls": sum(r["model_calls"] for r in rows),
            "tokens": sum(r["tokens"] for r in rows),
            "model_calls_mean": round(statistics.fmean(r["model_calls"] for r in rows), 3) if rows else None,
            "tokens_mean": round(statistics.fmean(r["tokens"] for r in rows), 1) if rows else None,
            "steps_mean": round(statistics.fmean(r["steps"] for r in rows), 3) if rows else None,
        },
        "exit_reasons": dict(Counter(r["exit_reason"] for r in rows).most_common()),
        "per_node": {
            node: {
                "calls": len(values),
                "p50": round(percentile(values, 50), 4),
                "p95": round(percentile(values, 95), 4),
            }
            for node, values in sorted(per_node.items())
        },
        "tool_errors": sum(r.get("tool_errors", 0) for r in rows),
        "errors": sum(1 for r in rows if r.get("error")),
        "judge_spread_mean": round(statistics.fmean(judged), 4) if judged else None,
        "manifest": manifest,
    }


# -- comparing ------------------------------------------------------------------------------------


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The summary and rows of a finished run directory.

    Raises:
        FileNotFoundError: Not a run directory (no summary.json / results.jsonl).
    """
    root = Path(run_dir)
    summary_path, results = root / "summary.json", root / "results.jsonl"
    if not summary_path.is_file() or not results.is_file():
        msg = f"{root} is not a finished run: it needs summary.json and results.jsonl (run `arag eval run` first)"
        raise FileNotFoundError(msg)
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(summary_path.read_text()), rows


def compare(
    run_a: str | Path,
    run_b: str | Path,
    *,
    metric: str | None = None,
    threshold: float = 0.0,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Metric deltas (B - A) over the items both runs answered, with paired bootstrap 95% CIs, the
    items that flipped, and ``regressions``: the gate metric (``metric``, default every metric)
    when B is worse than A by more than ``threshold``.

    Raises:
        ValueError: The runs share no items, or ``metric`` is not in both.
    """
    summary_a, rows_a = load_run(run_a)
    summary_b, rows_b = load_run(run_b)
    by_id_b = {r["id"]: r for r in rows_b}
    pairs = [(a, by_id_b[a["id"]]) for a in rows_a if a["id"] in by_id_b]
    if not pairs:
        msg = f"{run_a} and {run_b} share no items; compare runs of the same dataset"
        raise ValueError(msg)
    names = [n for n in summary_a["metrics"] if n in summary_b["metrics"]]
    if metric is not None and metric not in names:
        msg = f"metric {metric!r} is not in both runs; they share {', '.join(names)}"
        raise ValueError(msg)
    rng = random.Random(seed)  # noqa: S311 - reproducible resampling, not secrets
    draws = [[rng.randrange(len(pairs)) for _ in range(len(pairs))] for _ in range(resamples)]
    rows, flipped = [], []
    for name in names:
        paired = [
            (a["metrics"].get(name), b["metrics"].get(name))
            for a, b in pairs
            if a["metrics"].get(name) is not None and b["metrics"].get(name) is not None
        ]
        if not paired:
            continue
        diffs = [float(b) - float(a) for a, b in paired]
        low, high = _bootstrap(diffs, draws if len(paired) == len(pairs) else None, resamples, rng)
        rows.append(
            {
                "name": name,
                "a": statistics.fmean(float(a) for a, _ in paired),
                "b": statistics.fmean(float(b) for _, b in paired),
                "delta": statistics.fmean(diffs),
                "ci_low": low,
                "ci_high": high,
                "significant": low > 0 or high < 0,
                "n": len(paired),
            }
        )
    for a, b in pairs:
        for name in ("em", "all_gold@10", "abstained"):
            va, vb = a["metrics"].get(name), b["metrics"].get(name)
            if va is not None and vb is not None and va != vb:
                flipped.append({"id": a["id"], "question": a["question"], "metric": name, "a": va, "b": vb})
    gated = [r for r in rows if metric is None or r["name"] == metric]
    lower_is_better = {"abstained"}
    regressions = [
        r["name"]
        for r in gated
        if (r["delta"] > threshold if r["name"] in lower_is_better else r["delta"] < -threshold)
    ]
    return {
        "run_a": summary_a["run_id"],
        "run_b": summary_b["run_id"],
        "items": len(pairs),
        "metrics": rows,
        "flipped": flipped,
        "regressions": regressions,
        "threshold": threshold,
        "gate_metric": metric,
    }


def _bootstrap(
    diffs: list[float], draws: list[list[int]] | None, resamples: int, rng: random.Random
) -> tuple[float, float]:
    """The 95% percentile interval of the mean paired difference."""
    n = len(diffs)
    if draws is None:
        draws = [[rng.randrange(n) for _ in range(n)] for _ in range(resamples)]
    means = sorted(sum(diffs[i] for i in draw) / n for draw in draws)
    return means[int(0.025 * (len(means) - 1))], means[int(0.975 * (len(means) - 1))]


def write_comparison(comparison: dict[str, Any], path: Path) -> Path:
    """``comparison.md`` (and ``.json`` beside it)."""
    path.write_text(render_compare_markdown(comparison), encoding="utf-8")
    path.with_suffix(".json").write_text(json.dumps(comparison, indent=2, ensure_ascii=False) + "\n")
    return path


def assert_no_regression(
    candidate: str | Path | RunResult,
    baseline: str | Path,
    *,
    metric: str | None = None,
    threshold: float = 0.0,
) -> dict[str, Any]:
    """For regression tests in your own suite: fail (``AssertionError``) when ``candidate`` is worse
    than ``baseline`` by more than ``threshold`` on ``metric`` (default: every metric).

    ```python
    def test_answers_do_not_regress(tmp_path):
        run = evals.run("my_questions.jsonl", source="handbook", runs_dir=tmp_path)
        evals.assert_no_regression(run, "tests/baselines/handbook", metric="f1", threshold=0.02)
    ```
    """
    run_dir = candidate.dir if isinstance(candidate, RunResult) else Path(candidate)
    comparison = compare(baseline, run_dir, metric=metric, threshold=threshold)
    if comparison["regressions"]:
        lines = [
            f"{r['name']}: {r['a']:.4f} -> {r['b']:.4f} ({r['delta']:+.4f}, "
            f"95% CI [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}])"
            for r in comparison["metrics"]
            if r["name"] in comparison["regressions"]
        ]
        raise AssertionError(f"regression beyond {threshold} against {baseline}:\n" + "\n".join(lines))
    return comparison
