"""Scale-out benchmark of ``arag serve`` with threads in Postgres: load over two server
processes, workers killed mid-run, and a database restart under load.

A real PostgreSQL 15 (:class:`agents.testing.PostgresServer`: ``initdb`` into a temporary folder,
a loopback port) holds the threads (``ARAG_THREADS_URL``). The servers are real ``arag serve``
subprocesses over the bundled ``examples/corpus`` (ingested with the real all-MiniLM-L6-v2),
offline ``rag`` agent, embedding cache off. ``--workers N`` needs a Qdrant server, which cannot
be installed on these machines, so the "two workers" here are two ``arag serve`` processes, each
over its own copy of the embedded store, with the client spreading chats over them as a proxy
would: the thread store is the shared part, which is what is measured.

``load``: ``--chats`` (50) streaming chats at once, each continuing a thread of its own (so every
chat reads and writes Postgres): first all on one process, then alternately on two. Per chat the
time to the first SSE event and to ``[DONE]``; p50/p95/max and chats/s, side by side. An error
is as in :mod:`evals.bench_serve` (a non-200, an error object, no ``[DONE]``, content or citations).

``workers``: the same load of ``react`` chats against ``arag serve --workers 1`` and ``--workers 2``
(uvicorn's supervisor, one port), answered by the loopback OpenAI stub at once, the Qdrant URL a
closed port (so the agent runs without search and says so): the serving and thread-store path
of real workers, not agent work.

``kill``: ``--trials`` (20) times: a thread's first turn on process A; its second turn streamed on
A, which is killed with SIGKILL after a random 5-90% of the typical run time; then on process
B the thread must read back well formed (``GET /v1/threads/{id}``: turns alternate user/assistant,
the first turn whole; the killed turn's question may stand last without its answer, as its last
committed step) and a third turn must complete and be stored after it. A thread that fails any
of these is corrupted. The killed client must get an error (a closed connection) within
``--timeout``, never a hang. A is started again for the next trial.

``restart``: ``--clients`` (8) clients loop over thread turns (streamed and not, alternately, on
both processes) for ``--restart-seconds`` (24); Postgres stops (``pg_ctl -m fast``) after a
quarter of it and starts again after half. Every request must either succeed or get a 503
``thread_store_unavailable`` (an HTTP 503, or while streaming the same error object before
``[DONE]``); anything else, or a request without an end within ``--timeout``, is a failure.
Recovery time: from Postgres accepting connections again to the first thread turn that succeeds,
and to the last one that failed.

Exits 1 when a bar is missed: any load error, any corrupted thread, any hang, any failure in the
restart phase other than a 503.

    python -m evals.bench_scale --json runs/bench-scale.json
    python -m evals.bench_scale --chats 50 --trials 20 --clients 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from evals.bench_serve import QUESTIONS, ServerProcess, _fmt, finish, ingest, percentiles, stream_chat

__all__ = ["main"]

FOLLOW_UPS = ["When was that?", "Who was involved?", "Where did it happen?", "Why does it matter?"]


# -- load ------------------------------------------------------------------------------------


async def load(
    urls: list[str], chats: int, *, timeout: float, model: str = "rag", expect_citations: bool = True
) -> dict[str, Any]:
    """``chats`` streaming chats at once, chat ``i`` on ``urls[i % len(urls)]``, each in its own thread."""
    limits = httpx.Limits(max_connections=chats + 10, max_keepalive_connections=chats + 10)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout)) as client:
        started = time.perf_counter()
        rows = await asyncio.gather(
            *(
                stream_chat(
                    client,
                    urls[i % len(urls)],
                    QUESTIONS[i % len(QUESTIONS)],
                    timeout=timeout,
                    thread_id=f"load-{uuid.uuid4().hex}",
                    model=model,
                    expect_citations=expect_citations,
                )
                for i in range(chats)
            )
        )
        wall = time.perf_counter() - started
    errors = [{"question": r["question"], "status": r["status"], "error": r["error"]} for r in rows if r["error"]]
    return {
        "processes": len(urls),
        "chats": chats,
        "wall_s": round(wall, 2),
        "chats_per_s": round(chats / wall, 2),
        "first_event_ms": percentiles([r["first_event_ms"] for r in rows if r["first_event_ms"] is not None]),
        "done_ms": percentiles([r["done_ms"] for r in rows if r["done_ms"] is not None]),
        "errors": len(errors),
        "error_list": errors[:10],
        "hangs": sum(r["hang"] for r in rows),
    }


# -- kill -9 ---------------------------------------------------------------------------------


def _turn(url: str, question: str, thread: str, timeout: float) -> httpx.Response:
    body = {"model": "rag", "messages": [{"role": "user", "content": question}], "thread_id": thread}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=timeout)


def _thread_problem(messages: list[dict[str, Any]], first: str, killed: str) -> str | None:
    """Why a thread read back after a kill is corrupted (``None``: it is not)."""
    roles = [m["role"] for m in messages]
    if len(messages) < 2 or roles[:2] != ["user", "assistant"] or messages[0]["content"] != first:
        return f"the first turn is not whole: {roles[:2]}"
    if not messages[1]["content"].strip():
        return "the first answer is empty"
    rest = roles[2:]
    if rest == ["user"]:
        return None if messages[2]["content"] == killed else "a dangling question that was never asked"
    if rest not in ([], ["user", "assistant"]):
        return f"the turns do not alternate: {roles}"
    if rest and messages[2]["content"] != killed:
        return "the second turn is not the question asked"
    return None


async def _killed_turn(url: str, question: str, thread: str, delay: float, pid: int, timeout: float) -> dict[str, Any]:
    """Stream a turn and SIGKILL the server ``delay`` s after sending it."""
    body = {"model": "rag", "stream": True, "thread_id": thread, "messages": [{"role": "user", "content": question}]}
    outcome: dict[str, Any] = {"error": None, "finished_before_kill": False, "hang": False}

    async def client() -> None:
        try:
            async with (
                httpx.AsyncClient(timeout=httpx.Timeout(timeout)) as http,
                http.stream("POST", f"{url}/v1/chat/completions", json=body) as response,
            ):
                async for line in response.aiter_lines():
                    if line.strip() == "data: [DONE]":
                        outcome["finished_before_kill"] = True
        except httpx.HTTPError as exc:
            outcome["error"] = type(exc).__name__

    task = asyncio.ensure_future(client())
    await asyncio.sleep(delay)
    killed = time.perf_counter()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    try:
        await asyncio.wait_for(task, timeout)
    except TimeoutError:
        outcome["hang"] = True
    outcome["client_end_after_kill_ms"] = round((time.perf_counter() - killed) * 1000, 1)
    return outcome


def kill_trials(
    corpus: Path, copy: Path, env: dict[str, str], trials: int, timeout: float, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - when to kill, not a secret
    rows: list[dict[str, Any]] = []
    other = ServerProcess(copy, env)
    with other.running() as b:
        # The typical run time, so the kill lands within a run rather than after it.
        warm = ServerProcess(corpus, env)
        with warm.running() as a:
            runs = []
            for i in range(5):
                tick = time.perf_counter()
                _turn(a, QUESTIONS[i], f"warm-{i}", timeout).raise_for_status()
                runs.append(time.perf_counter() - tick)
        typical = statistics.median(runs)
        print(f"  typical run {typical * 1000:.0f} ms; kills land at 5-90% of it", flush=True)
        for trial in range(trials):
            thread = f"kill-{trial}-{uuid.uuid4().hex[:8]}"
            first, second, third = QUESTIONS[trial % len(QUESTIONS)], FOLLOW_UPS[trial % 4], "What else is known?"
            delay = rng.uniform(0.05, 0.9) * typical
            server = ServerProcess(corpus, env)
            row: dict[str, Any] = {"trial": trial, "delay_ms": round(delay * 1000, 1)}
            with server.running() as a:
                assert server.process is not None
                row["first_turn_status"] = _turn(a, first, thread, timeout).status_code
                row.update(asyncio.run(_killed_turn(a, second, thread, delay, server.process.pid, timeout)))
            read = httpx.get(f"{b}/v1/threads/{thread}", timeout=timeout)
            problem = None if read.status_code == 200 else f"GET thread: HTTP {read.status_code}"
            if problem is None:
                problem = _thread_problem(read.json()["messages"], first, second)
            if problem is None:
                continued = _turn(b, third, thread, timeout)
                after = httpx.get(f"{b}/v1/threads/{thread}", timeout=timeout).json()["messages"]
                if continued.status_code != 200:
                    problem = f"the next turn: HTTP {continued.status_code}"
                elif after[-2:] and [m["role"] for m in after[-2:]] != ["user", "assistant"]:
                    problem = "the next turn was not stored after the others"
                elif after[-2]["content"] != third:
                    problem = "the next turn's question is not last"
            row["corrupted"] = problem
            row["client_error"] = row["error"] is not None or row["finished_before_kill"]
            rows.append(row)
            state = "finished before the kill" if row["finished_before_kill"] else f"client: {row['error']}"
            print(
                f"  trial {trial + 1}/{trials}: kill after {row['delay_ms']} ms, {state}, "
                f"client ended {row['client_end_after_kill_ms']} ms after, thread {problem or 'ok'}",
                flush=True,
            )
    return {
        "trials": trials,
        "typical_run_ms": round(typical * 1000, 1),
        "killed_mid_run": sum(not r["finished_before_kill"] for r in rows),
        "corrupted": sum(r["corrupted"] is not None for r in rows),
        "hangs": sum(r["hang"] for r in rows),
        "client_end_after_kill_ms": percentiles([r["client_end_after_kill_ms"] for r in rows]),
        "rows": rows,
    }


# -- Postgres restart ------------------------------------------------------------------------


def _classify(status: int, text: str) -> str:
    """``ok``, ``503`` (an HTTP 503, or the same error object mid-stream) or ``other: ...``."""
    error_object = re.search(r'"error":\s*\{', text) is not None
    if status in (200, 503) and error_object and "thread_store_unavailable" in text:
        return "503"
    if status == 200 and not error_object:
        return "ok"
    return f"other: HTTP {status} {text[-200:]!r}"


async def restart_under_load(urls: list[str], pg: Any, clients: int, seconds: float, timeout: float) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    stop_at, start_at = seconds / 4, seconds / 2
    marks: dict[str, float] = {}
    began = time.perf_counter()

    async def client(i: int) -> None:
        thread = f"restart-{i}-{uuid.uuid4().hex[:8]}"
        turn = 0
        async with httpx.AsyncClient(timeout=httpx.Timeout(timeout)) as http:
            while time.perf_counter() - began < seconds:
                url, stream = urls[(i + turn) % len(urls)], turn % 2 == 1
                body = {
                    "model": "rag",
                    "stream": stream,
                    "thread_id": thread,
                    "messages": [{"role": "user", "content": QUESTIONS[(i + turn) % len(QUESTIONS)]}],
                }
                sent = time.perf_counter()
                try:
                    async with asyncio.timeout(timeout):
                        response = await http.post(f"{url}/v1/chat/completions", json=body)
                    outcome = _classify(response.status_code, response.text)
                except TimeoutError:
                    outcome = "hang"
                except httpx.HTTPError as exc:
                    outcome = f"other: {type(exc).__name__}"
                rows.append({"sent_s": sent - began, "end_s": time.perf_counter() - began, "outcome": outcome})
                turn += 1
                if outcome != "ok":
                    await asyncio.sleep(0.1)

    async def database() -> None:
        await asyncio.sleep(stop_at)
        await asyncio.to_thread(pg.stop)
        marks["stopped_s"] = time.perf_counter() - began
        await asyncio.sleep(start_at - stop_at)
        await asyncio.to_thread(pg.start)
        marks["started_s"] = time.perf_counter() - began

    await asyncio.gather(database(), *(client(i) for i in range(clients)))
    up = marks["started_s"]
    after = sorted((r for r in rows if r["end_s"] >= up), key=lambda r: r["end_s"])
    first_ok = next((r["end_s"] for r in after if r["outcome"] == "ok"), None)
    last_bad = max((r["end_s"] for r in after if r["outcome"] != "ok"), default=None)
    counts: dict[str, int] = {}
    for r in rows:
        key = r["outcome"] if r["outcome"] in ("ok", "503", "hang") else "other"
        counts[key] = counts.get(key, 0) + 1
    return {
        "clients": clients,
        "seconds": seconds,
        "requests": len(rows),
        "outcomes": counts,
        "others": [r["outcome"] for r in rows if r["outcome"].startswith("other")][:10],
        "postgres_stopped_s": round(marks["stopped_s"], 2),
        "postgres_started_s": round(up, 2),
        "first_success_after_start_s": None if first_ok is None else round(first_ok - up, 2),
        "last_failure_after_start_s": None if last_bad is None else round(last_bad - up, 2),
    }


# -- arag serve --workers ---------------------------------------------------------------------


def _workers_phase(root: Path, env: dict[str, str], args: argparse.Namespace, problems: list[str]) -> list[Any]:
    """``--chats`` streaming ``react`` chats (each its own Postgres thread) against ``arag serve``
    with one worker, then ``--workers 2``. The model is the loopback OpenAI stub (instant answers)
    and the Qdrant URL a closed port (``--workers`` needs a server one; the agent runs without its
    search tools and says so), so this measures the serving and thread-store path, not agent work."""
    import socket

    from agents.testing import OpenAIStub

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    results = []
    with OpenAIStub() as stub:
        stubbed = {
            **env,
            "ARAG_CHAT_MODEL": "stub",
            "ARAG_OPENAI_BASE_URL": stub.base_url,
            "ARAG_OPENAI_API_KEY": "k",
            "ARAG_QDRANT_URL": f"http://127.0.0.1:{closed}",
        }
        for workers in (1, 2):
            folder = root / f"workers-{workers}"
            folder.mkdir()
            with ServerProcess(folder, stubbed, args=["--workers", str(workers)]).running() as url:
                asyncio.run(load([url], 4, timeout=args.timeout, model="react", expect_citations=False))
                result = asyncio.run(
                    load([url], args.chats, timeout=args.timeout, model="react", expect_citations=False)
                )
            result["workers"] = workers
            results.append(result)
            _print_load(f"react over --workers {workers}", result)
            if result["errors"] or result["hangs"]:
                problems.append(f"--workers {workers}: {result['errors']} errors {result['error_list'][:3]}")
    return results


# -- the driver ------------------------------------------------------------------------------


def _print_load(label: str, result: dict[str, Any]) -> None:
    print(
        f"{label}: {result['chats']} chats in {result['wall_s']} s ({result['chats_per_s']} chats/s), "
        f"errors {result['errors']}, hangs {result['hangs']}\n"
        f"  first event {_fmt(result['first_event_ms'])}\n  [DONE]      {_fmt(result['done_ms'])}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=50, help="concurrent streaming chats in the load phase")
    parser.add_argument("--trials", type=int, default=20, help="kill -9 trials")
    parser.add_argument("--clients", type=int, default=8, help="clients looping during the Postgres restart")
    parser.add_argument("--restart-seconds", type=float, default=24.0, help="length of the restart phase")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request before it counts as hung")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phases", default="load,workers,kill,restart")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    phases = set(args.phases.split(","))

    from agents.testing import PostgresServer

    report: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
    }
    problems: list[str] = []
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(PostgresServer())
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scale-")))
        corpus, copy = root / "a", root / "b"
        corpus.mkdir()
        env = {
            "ARAG_EMBEDDING_CACHE": "false",
            "ARAG_CHAT_MODEL": "",
            "ARAG_THREADS_URL": pg.create_database("threads"),
            "ARAG_SERVER_MAX_RUNS": "4",
            "ARAG_SERVER_MAX_QUEUE": "64",
        }
        print(f"Postgres {pg.url}; ingest the bundled corpus", flush=True)
        ingest(corpus, extra={"ARAG_EMBEDDING_CACHE": "false"})
        shutil.copytree(corpus, copy, ignore=shutil.ignore_patterns("threads.sqlite*"))
        if "load" in phases:
            one, two = ServerProcess(corpus, env), ServerProcess(copy, env)
            with one.running() as a, two.running() as b:
                warm = asyncio.run(load([a, b], 4, timeout=args.timeout))
                print(f"warm-up: {warm['errors']} errors", flush=True)
                results = []
                for urls in ([a], [a, b]):
                    result = asyncio.run(load(urls, args.chats, timeout=args.timeout))
                    results.append(result)
                    _print_load(f"load over {len(urls)} process(es)", result)
                    if result["errors"] or result["hangs"]:
                        problems.append(f"load over {len(urls)}: {result['errors']} errors, {result['hangs']} hangs")
                report["load"] = results
        if "workers" in phases:
            report["workers"] = _workers_phase(root, env, args, problems)
        if "kill" in phases:
            print(f"kill: {args.trials} trials", flush=True)
            killed = kill_trials(corpus, copy, env, args.trials, args.timeout, args.seed)
            report["kill"] = killed
            print(
                f"kill: {killed['killed_mid_run']}/{killed['trials']} killed mid-run, {killed['corrupted']} corrupted "
                f"threads, {killed['hangs']} hangs; client ended {_fmt(killed['client_end_after_kill_ms'])} after",
                flush=True,
            )
            if killed["corrupted"] or killed["hangs"]:
                problems.append(f"kill: {killed['corrupted']} corrupted, {killed['hangs']} hangs")
        if "restart" in phases:
            one, two = ServerProcess(corpus, env), ServerProcess(copy, env)
            with one.running() as a, two.running() as b:
                restart = asyncio.run(restart_under_load([a, b], pg, args.clients, args.restart_seconds, args.timeout))
            report["restart"] = restart
            print(
                f"restart: {restart['requests']} requests: {restart['outcomes']}; Postgres down "
                f"{restart['postgres_stopped_s']}-{restart['postgres_started_s']} s; first success "
                f"{restart['first_success_after_start_s']} s after it was up, last failure "
                f"{restart['last_failure_after_start_s']} s after",
                flush=True,
            )
            bad = {k: v for k, v in restart["outcomes"].items() if k not in ("ok", "503")}
            if bad or restart["first_success_after_start_s"] is None:
                problems.append(f"restart: {bad or 'no success after the restart'} {restart['others']}")
    report["load_average_after"] = os.getloadavg()
    return finish(report, problems, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
