"""Load benchmark of ``arag serve``: concurrent streaming chats, and what happens past the cap.

The real server runs as a subprocess (``arag serve --port 0`` on loopback: its own interpreter,
GIL and event loop, as deployed) over the bundled ``examples/corpus``, ingested with ``arag
ingest`` and the real all-MiniLM-L6-v2 into the embedded store, with no chat model: the offline
``rag`` agent (heuristic strategies, real embeddings and store). The embedding cache is off
unless ``--embedding-cache``, so repeated questions cost as much as new ones. The client is
``httpx`` in this process: times are from just before a request is sent to the line that
carries the event, as a client sees them.

``load``: ``--chats`` (50) streaming chats at once against a cap that admits them all (4 runs,
64 waiting). Per chat: time to the first SSE event, to the first step of the run (slot wait
included), to the first content token and to ``[DONE]``; p50/p95/max of each, chats per second,
server RSS. An error is a status other than 200, an ``error`` object in the stream, no
``[DONE]``, no content, no citations or no ``finish_reason: stop``. ``--rounds`` repeats it and
reports the median of the p95s. Afterwards ``/health`` must show nothing running or waiting.

``burst``: a second server with a small cap (2 runs, 4 waiting) and ``--burst`` (30) streaming
chats at once, twice (cold: no finished run to base ``Retry-After`` on; warm): 200s against
429s; every 429 must have a whole-seconds ``Retry-After`` and an OpenAI error object
(``rate_limit_error``); every request must end within ``--timeout`` (a hang otherwise) and every
200 must be a complete chat. Then ``abandon``: twice the cap of clients that leave early (abort
before the headers, close after 0-6 events, so while queued and while running); the server must
be idle again and then admit a full cap of chats, all complete: no run slot or admission lost.

Exits 1 on any load error, hang, failure other than a proper 429, or lost slot.

    python -m evals.bench_serve --json runs/bench-serve.json
    python -m evals.bench_serve --chats 50 --rounds 3 --burst 30 --data-dir /tmp/serve-data
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "QUESTIONS",
    "ServerProcess",
    "abandon",
    "burst",
    "check_idle",
    "finish",
    "ingest",
    "load",
    "main",
    "percentiles",
    "scrape_requests",
    "stream_chat",
]

CORPUS = Path(__file__).resolve().parent.parent / "examples" / "corpus"
DESCRIPTION = "Short notes on space flight, bees, coral reefs, chemistry, inventions and Egyptology"

QUESTIONS = [
    "When did Apollo 11 land on the Moon?",
    "Who were the three astronauts on Apollo 11?",
    "Where did the lunar module Eagle touch down?",
    "Which astronaut stayed in lunar orbit aboard Columbia?",
    "How many kilograms of lunar rock did the Apollo 11 crew bring back?",
    "Where did Apollo 11 splash down, and on what date?",
    "What rocket launched Apollo 11 and from where?",
    "What does the waggle dance tell other bees?",
    "How do honey bees make honey from nectar?",
    "How many workers and drones live in a honey bee colony?",
    "What does the angle of the waggle run mean?",
    "How long is the Great Barrier Reef?",
    "Why do corals bleach?",
    "How many individual reefs make up the Great Barrier Reef?",
    "Off the coast of which Australian state is the Great Barrier Reef?",
    "Who discovered polonium and what was it named after?",
    "When was radium discovered?",
    "Why did Marie Curie receive the Nobel Prize in Chemistry in 1911?",
    "Who introduced movable-type printing in Europe, and when?",
    "When was the first US patent for the telephone granted?",
    "Who deciphered the Egyptian hieroglyphs?",
    "In which scripts is the decree on the Rosetta Stone written?",
    "In what year did Champollion announce his decipherment of hieroglyphs?",
    "What did the Apollo 11 astronauts leave on the lunar surface?",
]


# -- one chat ------------------------------------------------------------------------------------


async def stream_chat(
    client: httpx.AsyncClient,
    base_url: str,
    question: str,
    *,
    timeout: float,
    leave_after: int | None = None,
    thread_id: str | None = None,
    model: str = "rag",
    expect_citations: bool = True,
) -> dict[str, Any]:
    """One streaming chat; times in ms from just before the request is sent.

    ``leave_after``: close the connection after that many SSE events (0: as soon as the headers
    arrive), as a client that goes away does; its row is then not checked for completeness.
    ``thread_id``: continue that thread on the server (the question is then the only message).
    ``model``: the agent; ``expect_citations=False`` for one that answers without searching.
    """
    row: dict[str, Any] = {
        "question": question,
        "status": None,
        "headers_ms": None,
        "first_event_ms": None,
        "first_step_ms": None,
        "first_content_ms": None,
        "done_ms": None,
        "end_ms": None,
        "events": 0,
        "queued": False,
        "content_chars": 0,
        "citations": 0,
        "finish_reason": None,
        "retry_after": None,
        "error_object": None,
        "error": None,
        "hang": False,
    }
    body: dict[str, Any] = {"model": model, "stream": True, "messages": [{"role": "user", "content": question}]}
    if thread_id is not None:
        body["thread_id"] = thread_id
    started = time.perf_counter()

    def ms() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    try:
        async with asyncio.timeout(timeout):
            async with client.stream("POST", f"{base_url}/v1/chat/completions", json=body) as response:
                row["status"], row["headers_ms"] = response.status_code, ms()
                if response.status_code != 200:
                    raw = await response.aread()
                    row["retry_after"] = response.headers.get("retry-after")
                    row["error_object"] = _error_object(raw)
                    row["error"] = f"HTTP {response.status_code}"
                else:
                    await _read_events(response, row, ms, leave_after)
    except TimeoutError:
        row["hang"] = True
        row["error"] = f"no end within {timeout:g} s"
    except (httpx.HTTPError, OSError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
    except ValueError as exc:  # an event that is not JSON
        row["error"] = f"bad event: {exc}"
    row["end_ms"] = ms()
    if row["error"] is None and leave_after is None:
        row["error"] = _incomplete(row, expect_citations=expect_citations)
    return row


async def _read_events(
    response: httpx.Response, row: dict[str, Any], ms: Callable[[], float], leave_after: int | None
) -> None:
    if leave_after == 0:
        return
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if row["first_event_ms"] is None:
            row["first_event_ms"] = ms()
        row["events"] += 1
        if data == "[DONE]":
            row["done_ms"] = ms()
            return
        chunk = json.loads(data)
        if (chunk.get("arag") or {}).get("status") == "queued":
            row["queued"] = True  # the server said it waits for a run slot
        if row["first_step_ms"] is None and "step" in (chunk.get("arag") or {}):
            row["first_step_ms"] = ms()  # the run has a slot and has done something
        if "error" in chunk:
            error = chunk["error"]
            row["error_object"] = error
            row["error"] = f"error event: {error.get('message') if isinstance(error, dict) else error}"
        for choice in chunk.get("choices", []):
            content = (choice.get("delta") or {}).get("content") or ""
            if content and row["first_content_ms"] is None:
                row["first_content_ms"] = ms()
            row["content_chars"] += len(content)
            row["finish_reason"] = choice.get("finish_reason") or row["finish_reason"]
        row["citations"] += len(chunk.get("citations") or [])
        if leave_after is not None and row["events"] >= leave_after:
            return  # leaving the block closes the connection mid-stream


def _incomplete(row: dict[str, Any], *, expect_citations: bool = True) -> str | None:
    if row["done_ms"] is None:
        return "no [DONE]"
    if not row["content_chars"]:
        return "no content"
    if expect_citations and not row["citations"]:
        return "no citations"
    if row["finish_reason"] != "stop":
        return f"finish_reason {row['finish_reason']!r}"
    return None


def _error_object(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


async def _many(
    base_url: str,
    questions: Sequence[str],
    *,
    timeout: float,
    label: str,
    leave_after: Callable[[int], int | None] | None = None,
    give_up: Callable[[int], float | None] | None = None,
) -> tuple[list[dict[str, Any]], float]:
    """All the chats at once (one connection each); returns the rows and the wall time in s.

    Per chat ``i``: ``leave_after(i)`` events before the client leaves, ``give_up(i)`` seconds
    before it aborts whatever the state (its timeout; the row then has ``hang`` set)."""
    n = len(questions)
    done = 0
    step = max(1, n // 5) if n >= 20 else n
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)

    async def one(i: int, client: httpx.AsyncClient) -> dict[str, Any]:
        nonlocal done
        leave = leave_after(i) if leave_after is not None else None
        seconds = give_up(i) if give_up is not None else None
        row = await stream_chat(client, base_url, questions[i], timeout=seconds or timeout, leave_after=leave)
        done += 1
        if done % step == 0 or done == n:
            print(f"  {label}: {done}/{n} finished", flush=True)
        return row

    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout)) as client:
        started = time.perf_counter()
        rows = await asyncio.gather(*(one(i, client) for i in range(n)))
        wall = time.perf_counter() - started
    return list(rows), wall


def _questions(pool: Sequence[str], n: int, offset: int = 0) -> list[str]:
    return [pool[(offset + i) % len(pool)] for i in range(n)]


# -- numbers -------------------------------------------------------------------------------------


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95 (linear interpolation, as numpy) and max; ``None`` without values."""
    if not values:
        return {"p50": None, "p95": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        pos = (len(ordered) - 1) * q
        low = int(pos)
        high = min(low + 1, len(ordered) - 1)
        return round(ordered[low] + (ordered[high] - ordered[low]) * (pos - low), 1)

    return {"p50": at(0.5), "p95": at(0.95), "max": ordered[-1]}


def _times(rows: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [r[key] for r in rows if r[key] is not None]


# -- phases --------------------------------------------------------------------------------------


async def load(
    base_url: str,
    chats: int,
    *,
    timeout: float = 120.0,
    round_no: int = 1,
    questions: Sequence[str] = QUESTIONS,
) -> dict[str, Any]:
    """``chats`` streaming chats at once; every one must end with content, citations and [DONE]."""
    rows, wall = await _many(
        base_url, _questions(questions, chats, offset=round_no), timeout=timeout, label=f"load round {round_no}"
    )
    errors = [{"question": r["question"], "status": r["status"], "error": r["error"]} for r in rows if r["error"]]
    return {
        "chats": chats,
        "wall_s": round(wall, 2),
        "chats_per_s": round(chats / wall, 2),
        "first_event_ms": percentiles(_times(rows, "first_event_ms")),
        "first_step_ms": percentiles(_times(rows, "first_step_ms")),
        "first_content_ms": percentiles(_times(rows, "first_content_ms")),
        "done_ms": percentiles(_times(rows, "done_ms")),
        "queued_notices": sum(r["queued"] for r in rows),
        "errors": len(errors),
        "error_list": errors,
        "hangs": sum(r["hang"] for r in rows),
        "requests": rows,
    }


def _check_429(row: dict[str, Any]) -> str | None:
    retry = row["retry_after"]
    if retry is None:
        return "429 without Retry-After"
    if not retry.isdigit() or int(retry) < 1:
        return f"429 with Retry-After {retry!r} (not a whole number of seconds >= 1)"
    error = row["error_object"]
    if error is None or not error.get("message"):
        return "429 without an OpenAI error object"
    if (error.get("type"), error.get("code")) != ("rate_limit_error", "rate_limit_exceeded"):
        return f"429 with error type/code {error.get('type')!r}/{error.get('code')!r}"
    return None


async def burst(
    base_url: str, requests: int, *, timeout: float = 120.0, questions: Sequence[str] = QUESTIONS
) -> dict[str, Any]:
    """``requests`` streaming chats at once at a small cap: each a complete 200 or a proper 429."""
    rows, wall = await _many(base_url, _questions(questions, requests), timeout=timeout, label="burst")
    problems: list[str] = []
    for row in rows:
        if row["hang"]:
            problems.append(f"hang: {row['error']}")
        elif row["status"] == 429:
            if (bad := _check_429(row)) is not None:
                problems.append(bad)
        elif row["status"] != 200 or row["error"]:
            problems.append(f"status {row['status']}: {row['error']}")
    ok = [r for r in rows if r["status"] == 200]
    limited = [r for r in rows if r["status"] == 429]
    if not limited:
        problems.append("no 429: the burst never went past the cap")
    retry = sorted(int(r["retry_after"]) for r in limited if str(r["retry_after"]).isdigit())
    return {
        "requests": requests,
        "status_200": len(ok),
        "status_429": len(limited),
        "other": requests - len(ok) - len(limited),
        "hangs": sum(r["hang"] for r in rows),
        "wall_s": round(wall, 2),
        "reply_429_ms": percentiles(_times(limited, "end_ms")),
        "retry_after_s": {"min": retry[0], "max": retry[-1]} if retry else None,
        "admitted_done_ms": percentiles(_times(ok, "done_ms")),
        "problems": problems,
        "rows": rows,
    }


async def health(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{base_url}/health")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


async def scrape_requests(base_url: str, model: str = "rag") -> dict[str, float]:
    """``arag_requests_total`` of ``model`` by status, scraped from the server's ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{base_url}/metrics")
    response.raise_for_status()
    return {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "arag_requests_total" and sample.labels.get("model") == model
    }


async def check_idle(base_url: str, *, within: float = 15.0) -> dict[str, Any]:
    """Poll ``/health`` until nothing runs or waits; ``idle`` false if it never happens."""
    deadline = time.monotonic() + within
    started = time.perf_counter()
    while True:
        state = await health(base_url)
        if state["running"] == 0 and state["waiting"] == 0:
            return {"idle": True, "after_ms": round((time.perf_counter() - started) * 1000, 1), "health": state}
        if time.monotonic() > deadline:
            return {"idle": False, "after_ms": None, "health": state}
        await asyncio.sleep(0.05)


ABANDON_PLAN: list[tuple[str, float]] = [
    ("abort", 0.005),
    ("abort", 0.05),
    ("events", 0),
    ("events", 1),
    ("events", 2),
    ("events", 3),
    ("events", 6),
]
"""How the clients of :func:`abandon` leave, in turn: abort after that many seconds (maybe before
the request is even read), or close the stream after that many events (0: at the headers)."""


async def abandon(
    base_url: str, cap: int, *, timeout: float = 120.0, questions: Sequence[str] = QUESTIONS
) -> dict[str, Any]:
    """``2 x cap`` chats at once whose clients all leave early (:data:`ABANDON_PLAN`: before the
    headers, while queued, while running); then the server must become idle and admit a full
    ``cap`` of chats again, each complete."""
    count = 2 * cap
    plan = [ABANDON_PLAN[i % len(ABANDON_PLAN)] for i in range(count)]
    left, _ = await _many(
        base_url,
        _questions(questions, count, offset=5),
        timeout=timeout,
        label="abandon",
        leave_after=lambda i: int(plan[i][1]) if plan[i][0] == "events" else None,
        give_up=lambda i: plan[i][1] if plan[i][0] == "abort" else None,
    )
    idle = await check_idle(base_url)
    again, _ = await _many(base_url, _questions(questions, cap, offset=11), timeout=timeout, label="after abandon")
    problems = [
        f"abandoned chat: {r['error']}"
        for r, (how, _) in zip(left, plan, strict=True)
        if r["error"] and r["status"] != 429 and how != "abort"
    ]
    if not idle["idle"]:
        problems.append(f"not idle after the clients left: {idle['health']}")
    problems += [f"chat after abandon: status {r['status']}: {r['error']}" for r in again if r["error"]]
    return {
        "clients": count,
        "left": [
            {"how": how, "at": at, "status": r["status"], "events": r["events"]}
            for r, (how, at) in zip(left, plan, strict=True)
        ],
        "idle_after_ms": idle["after_ms"],
        "health": idle["health"],
        "full_cap_after": {"chats": cap, "complete": sum(r["error"] is None for r in again)},
        "problems": problems,
    }


# -- the server ----------------------------------------------------------------------------------


def _env(data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARAG_")}
    return {**env, "ARAG_DATA_DIR": str(data_dir), **extra}


def ingest(data_dir: Path, corpus: Path = CORPUS, extra: dict[str, str] | None = None) -> float:
    """``arag ingest`` the corpus into ``data_dir`` (incremental when already there); seconds."""
    command = [sys.executable, "-m", "agents.cli", "ingest", str(corpus), "--source", "examples"]
    command += ["--description", DESCRIPTION, "--quiet"]
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603
        command, env=_env(data_dir, extra or {}), cwd=data_dir, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"arag ingest failed ({done.returncode}): {done.stderr[-2000:]}")
    print(f"  {done.stdout.strip()}", flush=True)
    return time.perf_counter() - started


class ServerProcess:
    """``arag serve --port 0`` in a subprocess (own interpreter, GIL and event loop, as deployed);
    ``with`` yields the base URL once ``/health`` answers, and stops it with SIGINT."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str],
        *,
        start_timeout: float = 180.0,
        keep_log: int | None = 200,
        args: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.env = env
        self.args = list(args)
        """More ``arag serve`` options (``--workers 2``)."""
        self.start_timeout = start_timeout
        self.log: collections.deque[str] = collections.deque(maxlen=keep_log)
        """The server's stderr lines (the last ``keep_log`` of them; all with ``None``)."""
        self.process: subprocess.Popen[str] | None = None
        self._port: int | None = None
        self._started = threading.Event()

    def _drain(self, stream: Any) -> None:
        for line in stream:
            self.log.append(line.rstrip())
            if self._port is None and (found := re.search(r"running on https?://[^\s:]+:(\d+)", line)):
                self._port = int(found.group(1))
                self._started.set()
        self._started.set()  # exited: wake the waiter

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "agents.cli", "serve", "--port", "0", *self.args]

    def _environment(self) -> dict[str, str]:
        return _env(self.data_dir, self.env)

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        self.process = subprocess.Popen(  # noqa: S603
            self._command(),
            env=self._environment(),
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        drain = threading.Thread(target=self._drain, args=(self.process.stderr,), daemon=True)
        drain.start()
        try:
            self._started.wait(self.start_timeout)
            if self._port is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(5)
                tail = "\n".join(list(self.log)[-30:])
                raise SystemExit(f"arag serve did not start (exit code {self.process.poll()}):\n{tail}")
            url = f"http://127.0.0.1:{self._port}"
            self._wait_healthy(url)
            yield url
        finally:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            drain.join(5)

    def _wait_healthy(self, url: str) -> None:
        """Until ``/health`` answers: with ``--workers`` the port is bound before the workers serve."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                httpx.get(f"{url}/health", timeout=30).raise_for_status()
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or (self.process is not None and self.process.poll() is not None):
                    raise
                time.sleep(0.1)

    def rss_mb(self) -> float | None:
        """Resident memory of the server process (Linux), MB."""
        if self.process is None:
            return None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        return round(int(found.group(1)) / 1024, 1) if found else None


# -- the driver ----------------------------------------------------------------------------------


def _fmt(p: dict[str, float | None]) -> str:
    return f"p50 {p['p50']} / p95 {p['p95']} / max {p['max']} ms"


def _print_load(r: dict[str, Any]) -> None:
    print(
        f"  {r['chats']} chats in {r['wall_s']} s ({r['chats_per_s']} chats/s), errors {r['errors']}, "
        f"hangs {r['hangs']}, server RSS {r.get('server_rss_mb')} MB, "
        f"{r['queued_notices']} told they wait for a slot\n"
        f"    first event    {_fmt(r['first_event_ms'])}\n"
        f"    first step     {_fmt(r['first_step_ms'])}  (slot wait + first step)\n"
        f"    first content  {_fmt(r['first_content_ms'])}\n"
        f"    [DONE]         {_fmt(r['done_ms'])}",
        flush=True,
    )
    for error in r["error_list"][:10]:
        print(f"    error: {error}", flush=True)


async def _load_phase(server: ServerProcess, url: str, args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    problems: list[str] = []
    async with httpx.AsyncClient(timeout=args.timeout) as client:
        warm = await stream_chat(client, url, QUESTIONS[0], timeout=args.timeout)
    print(f"  warm-up chat: {warm['done_ms']} ms ({warm['error'] or 'ok'})", flush=True)
    rss_before = server.rss_mb()
    rounds = []
    for round_no in range(1, args.rounds + 1):
        result = await load(url, args.chats, timeout=args.timeout, round_no=round_no)
        result["server_rss_mb"] = server.rss_mb()
        _print_load(result)
        rounds.append(result)
        if result["errors"]:
            problems.append(f"load round {round_no}: {result['errors']} errors")
    idle = await check_idle(url)
    if not idle["idle"]:
        problems.append(f"load: not idle afterwards: {idle['health']}")
    sent = 1 + sum(r["chats"] for r in rounds)  # the warm-up chat and every load chat
    scraped = await scrape_requests(url)
    print(f"  /metrics: arag_requests_total {scraped} for {sent} chats sent", flush=True)
    if scraped.get("200", 0) != sent - sum(r["errors"] for r in rounds) or sum(scraped.values()) != sent:
        problems.append(f"load: /metrics counts {scraped}, but {sent} chats were sent")
    summary = {
        key: round(statistics.median(r[key]["p95"] for r in rounds if r[key]["p95"] is not None), 1)
        for key in ("first_event_ms", "first_step_ms", "first_content_ms", "done_ms")
        if any(r[key]["p95"] is not None for r in rounds)
    }
    report = {
        "rounds": rounds,
        "median_p95_ms": summary,
        "median_chats_per_s": round(statistics.median(r["chats_per_s"] for r in rounds), 2),
        "errors": sum(r["errors"] for r in rounds),
        "idle_after": idle,
        "server_rss_mb": {"before": rss_before, "after": server.rss_mb()},
        "metrics_requests": {"sent": sent, "scraped": scraped},
    }
    print(
        f"  load: median of p95s over {len(rounds)} round(s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in summary.items())
        + f"; median {report['median_chats_per_s']} chats/s; server RSS {rss_before} -> {server.rss_mb()} MB; "
        f"idle afterwards: {idle['idle']}",
        flush=True,
    )
    return report, problems


async def _burst_phase(url: str, args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    problems: list[str] = []
    bursts = []
    for label in ("cold", "warm"):  # Retry-After from the 1 s default, then from finished runs
        result = await burst(url, args.burst, timeout=args.timeout)
        result["label"] = label
        print(
            f"  {label}: {result['requests']} at once: {result['status_200']} x 200, {result['status_429']} x 429, "
            f"{result['other']} other, {result['hangs']} hangs ({result['wall_s']} s)\n"
            f"    429 reply       {_fmt(result['reply_429_ms'])}; Retry-After {result['retry_after_s']} s\n"
            f"    admitted [DONE] {_fmt(result['admitted_done_ms'])}",
            flush=True,
        )
        problems += [f"burst ({label}): {p}" for p in result["problems"]]
        idle = await check_idle(url)
        result["idle_after"] = idle
        if not idle["idle"]:
            problems.append(f"burst ({label}): not idle afterwards: {idle['health']}")
        bursts.append(result)
    left = await abandon(url, args.small_runs + args.small_queue, timeout=args.timeout)
    statuses = collections.Counter(str(x["status"]) for x in left["left"])
    print(
        f"  abandon: {left['clients']} clients left early (HTTP status seen: {dict(statuses)}); "
        f"idle again after {left['idle_after_ms']} ms; "
        f"then {left['full_cap_after']['complete']}/{left['full_cap_after']['chats']} chats complete",
        flush=True,
    )
    problems += left["problems"]
    return bursts, left, problems


def finish(report: dict[str, Any], problems: list[str], json_path: Path | None) -> int:
    """A benchmark's end: the problems into the report, OK or FAILED with them, the report as
    JSON when asked; the exit code (1 on any problem)."""
    report["problems"] = problems
    report["ok"] = not problems
    print("OK" if not problems else "FAILED:\n  " + "\n  ".join(problems), flush=True)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2))
    return 0 if not problems else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=50, help="concurrent streaming chats in the load phase")
    parser.add_argument("--rounds", type=int, default=1, help="load rounds (the median of their p95s is reported)")
    parser.add_argument("--max-runs", type=int, default=4, help="ARAG_SERVER_MAX_RUNS in the load phase")
    parser.add_argument("--max-queue", type=int, default=64, help="ARAG_SERVER_MAX_QUEUE in the load phase")
    parser.add_argument("--burst", type=int, default=30, help="concurrent requests past the small cap")
    parser.add_argument("--small-runs", type=int, default=2, help="ARAG_SERVER_MAX_RUNS in the burst phase")
    parser.add_argument("--small-queue", type=int, default=4, help="ARAG_SERVER_MAX_QUEUE in the burst phase")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request before it counts as hung")
    parser.add_argument("--embedding-cache", action="store_true", help="let the server cache query embeddings")
    parser.add_argument("--data-dir", type=Path, help="data folder to ingest into and serve (default: a temp one)")
    parser.add_argument("--skip-burst", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.chats > args.max_runs + args.max_queue:
        parser.error("--chats must fit in --max-runs + --max-queue (the load phase admits every chat)")

    with contextlib.ExitStack() as stack:
        data_dir = args.data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-serve-")))
        data_dir.mkdir(parents=True, exist_ok=True)
        common = {"ARAG_EMBEDDING_CACHE": "true" if args.embedding_cache else "false", "ARAG_CHAT_MODEL": ""}
        print(f"ingest {CORPUS} into {data_dir}", flush=True)
        ingest_s = ingest(data_dir, extra=common)
        report: dict[str, Any] = {
            "config": {k: v for k, v in vars(args).items() if k not in ("json", "data_dir")},
            "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg(),
            "ingest_s": round(ingest_s, 1),
        }
        problems: list[str] = []
        small = {"ARAG_SERVER_MAX_RUNS": str(args.max_runs), "ARAG_SERVER_MAX_QUEUE": str(args.max_queue)}
        server = ServerProcess(data_dir, {**common, **small})
        print(f"load: arag serve with max_runs {args.max_runs}, max_queue {args.max_queue}", flush=True)
        with server.running() as url:
            report["load"], found = asyncio.run(_load_phase(server, url, args))
            problems += found
        if not args.skip_burst:
            capped = {"ARAG_SERVER_MAX_RUNS": str(args.small_runs), "ARAG_SERVER_MAX_QUEUE": str(args.small_queue)}
            print(f"burst: arag serve with max_runs {args.small_runs}, max_queue {args.small_queue}", flush=True)
            with ServerProcess(data_dir, {**common, **capped}).running() as url:
                report["burst"], report["abandon"], found = asyncio.run(_burst_phase(url, args))
                problems += found
    report["load_average_after"] = os.getloadavg()
    return finish(report, problems, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
