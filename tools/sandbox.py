"""Code mode's sandbox: model-written Python runs in a separate, limited process.

The child (``tools/_sandbox_child.py``) runs ``python -I -S`` in a fresh temp dir with an empty
environment (no API keys or other secrets), its own session, and resource limits: CPU seconds,
address space, file size, open files. Inside, an audit hook refuses processes, sockets, ctypes,
file access outside the temp dir and imports not on the allowlist. The parent enforces a wall
clock (time spent answering ``llm_query`` does not count), caps what it reads back, and kills the
whole process group when a limit is passed. Every outcome is reported, never raised.

Not a boundary against a determined attacker with kernel exploits; for that run the agent in a
container or VM. It is enough to keep a model's mistakes (and its curiosity) contained.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_IMPORTS", "Sandbox", "SandboxLimits", "SandboxResult"]

DEFAULT_IMPORTS: tuple[str, ...] = (
    "bisect",
    "collections",
    "dataclasses",
    "datetime",
    "decimal",
    "fractions",
    "functools",
    "heapq",
    "itertools",
    "json",
    "math",
    "operator",
    "random",
    "re",
    "statistics",
    "string",
    "textwrap",
    "typing",
    "unicodedata",
)
_CHILD = Path(__file__).with_name("_sandbox_child.py")


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    timeout_s: float = 30.0
    """Wall-clock seconds of the code itself (sub-model calls excluded)."""
    cpu_s: int = 20
    memory_mb: int = 1024
    """Address space of the child process."""
    output_chars: int = 20_000
    """Printed output kept; the rest is counted and dropped."""
    file_mb: int = 16
    """Largest file the code may write in its temp dir."""
    max_llm_queries: int = 100


@dataclass(frozen=True, slots=True)
class SandboxResult:
    stdout: str
    error: str | None
    submitted: str | None
    dropped_chars: int = 0
    llm_queries: int = 0
    limit: str | None = None
    """Which limit stopped the code: ``time``, ``cpu``, ``memory``, ``output`` or ``None``."""

    def report(self) -> str:
        """What the model reads back."""
        parts = [self.stdout] if self.stdout else []
        if self.dropped_chars:
            parts.append(f"[output truncated: {self.dropped_chars} more characters were printed]")
        if self.error:
            parts.append(f"Error: {self.error}")
        if self.submitted is not None:
            parts.append("[answer submitted]")
        return "\n".join(parts) or "(no output)"


class Sandbox:
    """Runs Python in a separate limited process; ``llm_query`` reaches the caller over a pipe."""

    def __init__(self, limits: SandboxLimits | None = None, *, imports: tuple[str, ...] = DEFAULT_IMPORTS) -> None:
        self.limits = limits or SandboxLimits()
        self.imports = imports

    def run(self, code: str, *, context: str = "", llm_query: Callable[[str], str] | None = None) -> SandboxResult:
        tmp = tempfile.mkdtemp(prefix="arag-sandbox-")
        try:
            return self._run(code, context, llm_query, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _run(self, code: str, context: str, llm_query: Callable[[str], str] | None, tmp: str) -> SandboxResult:
        limits = self.limits
        context_path = Path(tmp, "context.txt")
        context_path.write_text(context, encoding="utf-8")
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and file
            [sys.executable, "-I", "-S", str(_CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=tmp,
            env={"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"},
            preexec_fn=self._limit_child,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        assert process.stdin is not None
        assert process.stdout is not None
        header = {
            "code": code,
            "context_path": str(context_path),
            "tmpdir": tmp,
            "allowed": list(self.imports),
            "output_chars": limits.output_chars,
        }
        lines: queue.Queue[str | None] = queue.Queue()
        cap = limits.output_chars * 8 + 1_000_000  # JSON escaping can grow the kept output

        def read() -> None:
            total = 0
            assert process.stdout is not None
            for line in iter(lambda: process.stdout.readline(cap), ""):  # type: ignore[union-attr]
                total += len(line)
                if total > cap or not line.endswith("\n"):
                    lines.put("__overflow__")
                    return
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        queries = 0
        spent = 0.0  # seconds of code time so far (llm_query time excluded)
        try:
            process.stdin.write(json.dumps(header) + "\n")
            process.stdin.flush()
            mark = time.monotonic()
            while True:
                remaining = limits.timeout_s - spent - (time.monotonic() - mark)
                try:
                    line = lines.get(timeout=max(0.0, remaining))
                except queue.Empty:
                    return self._stopped(process, "time", f"the code ran longer than {limits.timeout_s:g} s")
                if line == "__overflow__":
                    return self._stopped(process, "output", "the code wrote too much output outside print")
                if line is None:
                    return self._died(process)
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:
                    return self._stopped(process, "output", "the code wrote to the sandbox's control channel")
                if message.get("type") == "done":
                    process.wait(timeout=5)
                    error, dropped = message.get("error"), int(message.get("dropped", 0))
                    limit = "memory" if str(error).startswith("MemoryError") else "output" if dropped else None
                    return SandboxResult(
                        stdout=str(message.get("stdout", "")),
                        error=error,
                        submitted=message.get("submitted"),
                        dropped_chars=dropped,
                        llm_queries=queries,
                        limit=limit,
                    )
                spent += time.monotonic() - mark
                reply = self._answer(message, llm_query, queries)
                queries += 1
                process.stdin.write(json.dumps(reply) + "\n")
                process.stdin.flush()
                mark = time.monotonic()
        except (BrokenPipeError, OSError):
            return self._died(process)
        finally:
            self._kill(process)

    def _answer(
        self, message: dict[str, object], llm_query: Callable[[str], str] | None, queries: int
    ) -> dict[str, str]:
        if message.get("type") != "llm_query":
            return {"error": f"unknown request {message.get('type')!r}"}
        if llm_query is None:
            return {"error": "llm_query is not available in this run"}
        if queries >= self.limits.max_llm_queries:
            return {"error": f"the code used its {self.limits.max_llm_queries} llm_query calls"}
        try:
            return {"text": llm_query(str(message.get("prompt", "")))}
        except Exception as exc:  # the code sees the failure of its sub-call as an exception
            return {"error": f"{type(exc).__name__}: {exc}"}

    def _limit_child(self) -> None:
        limits = self.limits
        os.setsid()
        memory = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        file_size = limits.file_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def _stopped(self, process: subprocess.Popen[str], limit: str, why: str) -> SandboxResult:
        self._kill(process)
        return SandboxResult(stdout="", error=f"stopped: {why}", submitted=None, limit=limit)

    def _died(self, process: subprocess.Popen[str]) -> SandboxResult:
        try:
            code = process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._kill(process)
            code = process.wait()
        if code in (-signal.SIGXCPU, -signal.SIGKILL):
            limit, why = "cpu", f"the code used more than {self.limits.cpu_s} s of CPU"
        elif code == -signal.SIGXFSZ:
            limit, why = "file", f"the code wrote a file larger than {self.limits.file_mb} MB"
        else:
            limit, why = "memory", f"the sandbox process died (exit code {code}), likely out of memory"
        return SandboxResult(stdout="", error=f"stopped: {why}", submitted=None, limit=limit)

    @staticmethod
    def _kill(process: subprocess.Popen[str]) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
