"""Abuse benchmark of ``arag serve``: hostile bodies, open files over many requests, slow and
idle connections under a small open-files limit, and clients that hang up mid-upload.

The real server runs as a subprocess (``arag serve --port 0`` on loopback, bearer key set) over
the bundled ``examples/corpus``, ingested with ``arag ingest`` and the real all-MiniLM-L6-v2 into
the embedded store, with no chat model (the offline ``rag`` agent) and the embedding cache on
(as deployed by default). Its stderr (uvicorn's log and the server's own lines) is kept whole:
a ``Traceback`` line anywhere in it fails the run. Open files are counted in
``/proc/<pid>/fd`` of the server process.

``malformed``: one request per hostile body (deep nesting, a 5,000-digit integer, NaN, lone
surrogates, invalid UTF-8, ...). Each must get a 4xx whose body is exactly an OpenAI-style
``{"error": {"message", "type", "param", "code"}}`` object, with no exception text in it.

``fds``: ``--requests`` (1,000) ordinary chats, half streamed, ``--concurrency`` (4) at a time, the
questions varied so the embedding cache both hits and misses. The open-file count is sampled
every 100 requests; the count at the end may exceed the count after warm-up by 10 at most.

``slowloris``: a second server whose open-files limit is ``--nofile`` (256; set in the child
before it starts, like ``ulimit -n``). After ``--slow-warm-up`` (300) ordinary chats (a server
that has been serving a while), ``--slow`` (100) connections are held for ``--hold``
(15) s: a third stay silent, a third send request headers a few bytes a second and never
finish them, a third send whole headers and then trickle the body. A connection the server
closes is opened again at once, so ``--slow`` are held all the time. Meanwhile ``/health`` and
an authorised chat are asked in turn, each as soon as the previous one answers; each must
answer (200) within ``--probe-timeout`` s. Reported: answered/asked, p50 and max latency, the
most open files the server had, and how often the server closed a slow connection.

``hangups``: ``--hangups`` (100) clients send headers and part of a body, then hang up. Each
must leave at most one log line (a ``client_disconnected`` line) and no traceback.

Exits 1 when any check fails.

    python -m evals.bench_serve_abuse --json runs/bench-serve-abuse.json
    python -m evals.bench_serve_abuse --requests 200 --hold 5 --phases malformed,fds
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from evals.bench_serve import QUESTIONS, ServerProcess, finish, ingest

__all__ = ["MALFORMED", "AbuseServer", "fds", "hangups", "main", "malformed", "slowloris"]

KEY = "bench-abuse-key"
PHASES = ("malformed", "fds", "slowloris", "hangups")

# Sets the child's open-files limit (soft and hard), then becomes `python -m agents.cli serve`.
_LIMITED = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "n and resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


def _user(text: str) -> str:
    return json.dumps([{"role": "user", "content": text}])


MALFORMED: dict[str, bytes] = {
    "nested arrays x100k": b'{"model": "rag", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "nested objects x5k": b'{"model": "rag", "x": '
    + b'{"a": ' * 5_000
    + b"1"
    + b"}" * 5_000
    + b', "messages": '
    + _user("hi").encode()
    + b"}",
    "nested arrays x500 (parses)": b'{"model": "rag", "x": '
    + b"[" * 500
    + b"]" * 500
    + b', "messages": '
    + _user("hi").encode()
    + b"}",
    "5000-digit integer (extra field)": b'{"model": "rag", "max_tokens": '
    + b"9" * 5_000
    + b', "messages": '
    + _user("hi").encode()
    + b"}",
    "5000-digit integer (content)": b'{"model": "rag", "messages": [{"role": "user", "content": '
    + b"9" * 5_000
    + b"}]}",
    "NaN": b'{"model": "rag", "temperature": NaN, "messages": ' + _user("hi").encode() + b"}",
    "Infinity": b'{"model": "rag", "temperature": -Infinity, "messages": ' + _user("hi").encode() + b"}",
    "lone surrogate (content)": b'{"model": "rag", "messages": [{"role": "user", "content": "tower \\ud800"}]}',
    "lone surrogate (streamed)": b'{"model": "rag", "stream": true, "messages": [{"role": "user", '
    b'"content": "How tall is the tower \\udfff?"}]}',
    "lone surrogate (key)": b'{"model": "rag", "\\udc00": 1, "messages": ' + _user("hi").encode() + b"}",
    "lone surrogate (model)": b'{"model": "r\\ud800", "messages": ' + _user("hi").encode() + b"}",
    "invalid UTF-8": b'{"model": "rag", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
    "UTF-8-encoded surrogate": b'{"model": "rag", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
    "not JSON": b"{model: rag}",
    "empty body": b"",
    "top-level array": b"[]",
    "messages not a list": b'{"model": "rag", "messages": {"role": "user"}}',
}


# -- the server -----------------------------------------------------------------------------------


class AbuseServer(ServerProcess):
    """``arag serve --port 0`` in a subprocess behind the API key, with an open-files limit when
    ``nofile`` is set; every line of its stderr is kept in :attr:`log`."""

    def __init__(self, data_dir: Path, env: dict[str, str], *, nofile: int = 0, start_timeout: float = 180.0) -> None:
        super().__init__(data_dir, {"ARAG_API_KEY": KEY, **env}, start_timeout=start_timeout, keep_log=None)
        self.nofile = nofile

    def _command(self) -> list[str]:
        return [sys.executable, "-c", _LIMITED, str(self.nofile), *super()._command()[1:]]

    def open_files(self) -> int | None:
        """Entries in ``/proc/<pid>/fd`` of the server (Linux)."""
        if self.process is None:
            return None
        try:
            return sum(1 for _ in Path(f"/proc/{self.process.pid}/fd").iterdir())
        except OSError:
            return None

    def tracebacks(self, since: int = 0) -> int:
        return sum("Traceback" in line for line in itertools.islice(self.log, since, None))


def _headers() -> dict[str, str]:
    return {"authorization": f"Bearer {KEY}", "content-type": "application/json"}


def _is_error_object(raw: bytes) -> bool:
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    return (
        isinstance(data, dict) and set(data) == {"error"} and set(data["error"]) == {"message", "type", "param", "code"}
    )


def _pct(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "max": None}
    return {"p50": round(statistics.median(values), 1), "max": round(max(values), 1)}


# -- phases ---------------------------------------------------------------------------------------

_EXCEPTION_TEXT = re.compile(r"Traceback|RecursionError|Exceeds the limit|codec can't|surrogates not allowed")


def malformed(server: AbuseServer, url: str) -> tuple[dict[str, Any], list[str]]:
    """Each hostile body once: a 4xx with an OpenAI error object and no exception text."""
    problems: list[str] = []
    rows = []
    since = len(server.log)
    with httpx.Client(timeout=60) as client:
        for name, body in MALFORMED.items():
            row: dict[str, Any] = {"attack": name, "bytes": len(body)}
            started = time.perf_counter()
            try:
                response = client.post(f"{url}/v1/chat/completions", content=body, headers=_headers())
                raw = response.read()
                row |= {"status": response.status_code, "error_object": _is_error_object(raw)}
                row["message"] = (
                    json.loads(raw)["error"]["message"][:160]
                    if row["error_object"]
                    else raw[:160].decode("utf-8", "replace")
                )
            except (httpx.HTTPError, OSError) as exc:
                row |= {"status": None, "error_object": False, "message": f"{type(exc).__name__}: {exc}"}
            row["ms"] = round((time.perf_counter() - started) * 1000, 1)
            ok = (
                row["status"] is not None
                and 400 <= row["status"] < 500
                and row["error_object"]
                and not _EXCEPTION_TEXT.search(row["message"])
            )
            row["ok"] = bool(ok)
            rows.append(row)
            print(f"  {'ok  ' if ok else 'FAIL'} {name:<34} {row['status']}  {row['message'][:90]}", flush=True)
            if not ok:
                problems.append(f"malformed {name!r}: {row['status']} {row['message'][:120]}")
    time.sleep(0.5)
    tracebacks = server.tracebacks(since)
    if tracebacks:
        problems.append(f"malformed: {tracebacks} tracebacks in the server log")
    print(
        f"  {sum(r['ok'] for r in rows)}/{len(rows)} refused properly; {tracebacks} tracebacks in the log", flush=True
    )
    return {"rows": rows, "tracebacks": tracebacks}, problems


async def _ordinary(client: httpx.AsyncClient, url: str, i: int) -> str | None:
    """One ordinary chat (streamed when ``i`` is odd); an error description or ``None``."""
    question = QUESTIONS[i % len(QUESTIONS)]
    if i % 3 == 0:
        question = f"{question} (asked {i // 3} times)"  # a new text: an embedding-cache miss
    body = {"model": "rag", "stream": i % 2 == 1, "messages": [{"role": "user", "content": question}]}
    try:
        response = await client.post(f"{url}/v1/chat/completions", json=body, headers=_headers())
    except (httpx.HTTPError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if body["stream"] and not response.text.rstrip().endswith("data: [DONE]"):
        return "stream without [DONE]"
    return None


async def _fds_run(server: AbuseServer, url: str, n: int, concurrency: int) -> dict[str, Any]:
    errors: list[str] = []
    samples: list[tuple[int, int | None]] = []
    async with httpx.AsyncClient(timeout=120) as client:
        for i in range(20):  # warm-up: every lazily opened file is open before the first sample
            await _ordinary(client, url, i)
        await asyncio.sleep(1.0)
        samples.append((0, server.open_files()))
        done = 0
        queue = iter(range(n))

        async def worker() -> None:
            nonlocal done
            for i in queue:
                error = await _ordinary(client, url, 20 + i)
                if error:
                    errors.append(error)
                done += 1
                if done % 100 == 0:
                    samples.append((done, server.open_files()))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    await asyncio.sleep(1.0)
    samples.append((n, server.open_files()))
    return {"samples": samples, "errors": errors, "wall_s": round(wall, 1)}


def fds(server: AbuseServer, url: str, n: int, concurrency: int) -> tuple[dict[str, Any], list[str]]:
    """``n`` ordinary chats; the open-file count must stay within 10 of its value after warm-up."""
    result = asyncio.run(_fds_run(server, url, n, concurrency))
    counts = [c for _, c in result["samples"] if c is not None]
    start, end = counts[0], counts[-1]
    report = {
        "requests": n,
        "concurrency": concurrency,
        "open_files": {"after_warm_up": start, "end": end, "max": max(counts), "samples": result["samples"]},
        "errors": len(result["errors"]),
        "error_list": result["errors"][:10],
        "wall_s": result["wall_s"],
        "tracebacks": server.tracebacks(),
    }
    print(
        f"  {n} chats in {result['wall_s']} s, {len(result['errors'])} errors; open files after warm-up {start}, "
        f"max {max(counts)}, end {end}; samples {[c for _, c in result['samples']]}",
        flush=True,
    )
    problems = []
    if end - start > 10:
        problems.append(f"fds: open files rose from {start} to {end} over {n} requests")
    if result["errors"]:
        problems.append(f"fds: {len(result['errors'])} failed requests, first: {result['errors'][0]}")
    if report["tracebacks"]:
        problems.append(f"fds: {report['tracebacks']} tracebacks in the server log")
    return report, problems


_SLOW_KINDS = ("silent", "slow headers", "slow body")


async def _hold(host: str, port: int, kind: str, until: float, stats: dict[str, Any]) -> None:
    """Keep one slow connection of ``kind`` open until ``until``; reopen it when the server closes it."""
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            stats["connect_errors"][type(exc).__name__] = stats["connect_errors"].get(type(exc).__name__, 0) + 1
            await asyncio.sleep(0.2)
            continue
        stats["opened"] += 1
        try:
            if kind == "slow headers":
                writer.write(head)
            elif kind == "slow body":
                writer.write(head + f"authorization: Bearer {KEY}\r\ncontent-length: 100000\r\n\r\n{{".encode())
            while time.monotonic() < until:
                if kind != "silent":
                    writer.write(b"x-slow: 1\r\n" if kind == "slow headers" else b" ")
                    await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(4096), 1.0)
                except TimeoutError:
                    continue
                # The server answered (a 408, say) or closed: count it and open another.
                status = data.split(b" ", 2)[1].decode(errors="replace") if data.startswith(b"HTTP/") else "closed"
                stats["closed_by_server"][kind][status] = stats["closed_by_server"][kind].get(status, 0) + 1
                break
        except OSError:
            stats["closed_by_server"][kind]["reset"] = stats["closed_by_server"][kind].get("reset", 0) + 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _slowloris_run(
    server: AbuseServer, url: str, slow: int, hold: float, probe_timeout: float, warm_up: int
) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    async with httpx.AsyncClient(timeout=120) as client:  # a server that has been serving a while
        warm_errors = [e for i in range(warm_up) if (e := await _ordinary(client, url, i))]
    open_before = server.open_files()
    stats: dict[str, Any] = {"opened": 0, "connect_errors": {}, "closed_by_server": {k: {} for k in _SLOW_KINDS}}
    probes: dict[str, list[Any]] = {"health": [], "chat": []}
    open_files: list[int] = []
    until = time.monotonic() + hold
    holders = [asyncio.create_task(_hold(host, int(port), _SLOW_KINDS[i % 3], until, stats)) for i in range(slow)]
    await asyncio.sleep(1.0)  # let them all connect first

    async def sample() -> None:
        while time.monotonic() < until:
            if (count := server.open_files()) is not None:
                open_files.append(count)
            await asyncio.sleep(0.25)

    async def probe() -> None:
        async with httpx.AsyncClient(timeout=probe_timeout, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            i = 0
            while time.monotonic() < until:
                kind = "health" if i % 2 == 0 else "chat"
                started = time.perf_counter()
                try:
                    if kind == "health":
                        response = await client.get(f"{url}/health")
                    else:
                        body = {
                            "model": "rag",
                            "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
                        }
                        response = await client.post(f"{url}/v1/chat/completions", json=body, headers=_headers())
                    outcome: Any = response.status_code
                except (httpx.HTTPError, OSError) as exc:
                    outcome = type(exc).__name__
                probes[kind].append((outcome, round((time.perf_counter() - started) * 1000, 1)))
                i += 1

    await asyncio.gather(sample(), probe(), *holders)
    report: dict[str, Any] = {
        "slow_connections": slow,
        "hold_s": hold,
        "warm_up_requests": warm_up,
        "warm_up_errors": len(warm_errors),
        "open_files_before_hold": open_before,
        **stats,
    }
    for kind, rows in probes.items():
        answered = [ms for outcome, ms in rows if outcome == 200]
        failures: dict[str, int] = {}
        for outcome, _ in rows:
            if outcome != 200:
                failures[str(outcome)] = failures.get(str(outcome), 0) + 1
        report[kind] = {"asked": len(rows), "answered": len(answered), "ms": _pct(answered), "failures": failures}
    report["open_files_max"] = max(open_files) if open_files else None
    return report


def slowloris(
    server: AbuseServer, url: str, slow: int, hold: float, probe_timeout: float, warm_up: int = 300
) -> tuple[dict[str, Any], list[str]]:
    """After ``warm_up`` ordinary chats, ``slow`` slow connections held ``hold`` s while
    ``/health`` and a chat are asked in turn."""
    since = len(server.log)
    report = asyncio.run(_slowloris_run(server, url, slow, hold, probe_timeout, warm_up))
    time.sleep(0.5)
    report["tracebacks"] = server.tracebacks(since)
    report["log_lines"] = len(server.log) - since
    for kind in ("health", "chat"):
        r = report[kind]
        print(
            f"  {kind:<6}: {r['answered']}/{r['asked']} answered, p50 {r['ms']['p50']} / max {r['ms']['max']} ms"
            f"{', failures ' + json.dumps(r['failures']) if r['failures'] else ''}",
            flush=True,
        )
    print(
        f"  after {warm_up} ordinary chats ({report['warm_up_errors']} errors): {report['open_files_before_hold']} "
        f"open files",
        flush=True,
    )
    print(
        f"  {slow} slow connections for {hold:g} s: {report['opened']} opened, closed by the server "
        f"{json.dumps(report['closed_by_server'])}, connect errors {json.dumps(report['connect_errors'])}; "
        f"server open files max {report['open_files_max']}; {report['tracebacks']} tracebacks, "
        f"{report['log_lines']} log lines",
        flush=True,
    )
    problems = []
    for kind in ("health", "chat"):
        r = report[kind]
        if not r["asked"] or r["answered"] < r["asked"]:
            problems.append(f"slowloris: {kind} answered {r['answered']}/{r['asked']} ({r['failures']})")
    if report["tracebacks"]:
        problems.append(f"slowloris: {report['tracebacks']} tracebacks in the server log")
    return report, problems


async def _hang_up(host: str, port: int) -> None:
    _, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {KEY}\r\ncontent-length: 50000\r\n\r\n".encode()
        + b'{"model": "rag", "messages": [' * 20
    )
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.transport.abort()


def hangups(server: AbuseServer, url: str, n: int) -> tuple[dict[str, Any], list[str]]:
    """``n`` clients hang up during their upload: no traceback, at most one log line each."""
    host, port = url.removeprefix("http://").split(":")
    since = len(server.log)

    async def run() -> None:
        await asyncio.gather(*(_hang_up(host, int(port)) for _ in range(n)))

    asyncio.run(run())
    time.sleep(1.0)
    lines = list(server.log)[since:]
    health = httpx.get(f"{url}/health", timeout=10)
    report: dict[str, Any] = {
        "clients": n,
        "log_lines": len(lines),
        "tracebacks": server.tracebacks(since),
        "disconnect_lines": sum("client_disconnected" in line for line in lines),
        "health_after": health.status_code,
        "sample": lines[:3],
    }
    print(
        f"  {n} hang-ups: {report['log_lines']} log lines ({report['disconnect_lines']} client_disconnected), "
        f"{report['tracebacks']} tracebacks; /health {health.status_code}",
        flush=True,
    )
    problems = []
    if report["tracebacks"]:
        problems.append(f"hangups: {report['tracebacks']} tracebacks for {n} clients")
    if report["log_lines"] > n:
        problems.append(f"hangups: {report['log_lines']} log lines for {n} clients")
    if health.status_code != 200:
        problems.append(f"hangups: /health {health.status_code} afterwards")
    return report, problems


# -- the driver -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {', '.join(PHASES)}")
    parser.add_argument("--requests", type=int, default=1_000, help="ordinary chats in the fds phase")
    parser.add_argument("--concurrency", type=int, default=4, help="chats at once in the fds phase")
    parser.add_argument("--slow", type=int, default=100, help="slow connections held in the slowloris phase")
    parser.add_argument("--hold", type=float, default=15.0, help="seconds the slow connections are held")
    parser.add_argument("--nofile", type=int, default=256, help="open-files limit of the slowloris server (0: none)")
    parser.add_argument("--probe-timeout", type=float, default=10.0, help="seconds a probe may take while held")
    parser.add_argument("--slow-warm-up", type=int, default=300, help="ordinary chats before the slow connections")
    parser.add_argument("--hangups", type=int, default=100, help="clients that hang up mid-upload")
    parser.add_argument("--data-dir", type=Path, help="data folder to ingest into and serve (default: a temp one)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phases {sorted(unknown)}; use {', '.join(PHASES)}")

    report: dict[str, Any] = {"config": {k: str(v) for k, v in vars(args).items() if k != "json"}}
    problems: list[str] = []
    env = {"ARAG_CHAT_MODEL": "", "ARAG_EMBEDDING_CACHE": "true"}
    with contextlib.ExitStack() as stack:
        data_dir = args.data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-abuse-")))
        data_dir.mkdir(parents=True, exist_ok=True)
        print(f"ingest into {data_dir}", flush=True)
        ingest(data_dir, extra=env)
        if {"malformed", "fds", "hangups"} & set(phases):
            server = AbuseServer(data_dir, env)
            with server.running() as url:
                report["open_files_at_start"] = server.open_files()
                print(f"arag serve (default limits), {report['open_files_at_start']} open files", flush=True)
                for phase in ("malformed", "fds", "hangups"):
                    if phase not in phases:
                        continue
                    print(f"{phase}:", flush=True)
                    if phase == "malformed":
                        report[phase], found = malformed(server, url)
                    elif phase == "fds":
                        report[phase], found = fds(server, url, args.requests, args.concurrency)
                    else:
                        report[phase], found = hangups(server, url, args.hangups)
                    problems += found
            report["server_log_tail"] = list(server.log)[-5:]
        if "slowloris" in phases:
            limited = AbuseServer(data_dir, env, nofile=args.nofile)
            with limited.running() as url:
                print(f"slowloris: arag serve under an open-files limit of {args.nofile or 'none'}", flush=True)
                report["slowloris"], found = slowloris(
                    limited, url, args.slow, args.hold, args.probe_timeout, args.slow_warm_up
                )
                problems += found
            report["slowloris"]["server_log_sample"] = [
                line for line in limited.log if "arag" in line or "limit" in line.lower()
            ][:5]
    return finish(report, problems, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
