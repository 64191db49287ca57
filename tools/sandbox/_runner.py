"""Code mode's sandbox: model-written Python runs in a separate process behind an OS boundary.

Threat model: the code is hostile. It may come from a model that read an injected instruction
in a document, and it owns the whole interpreter it runs in: any check written in Python inside
that process can be switched off by the code (frames, ``__globals__``, closures, monkeypatching).
So the boundary is the operating system (``tools/sandbox/_isolation.py``): bubblewrap namespaces (user,
pid, network, mount, ipc, uts), uid 65534 with no capabilities, ``no_new_privs``, a seccomp
filter, a read-only root with a size-capped tmpfs as the only writable place, resource limits
(CPU, address space, file size, open files, processes), and a memory cgroup per run where one
can be made (``tools/sandbox/_cgroup.py``). The child's own Python guard
(``tools/sandbox/_child.py``) is an extra layer that turns honest mistakes into clear errors.

The parent treats the child as hostile too. Every message it reads is size-capped and checked
against a schema; anything else ends the child with ``error="protocol violation: ..."``. Replies
are written without blocking (a child that stops reading runs into the time limit), a wall clock
covers the code's time (time spent answering ``llm_query`` does not count), and on every way out
the whole process tree is killed. :meth:`Sandbox.run` never raises for anything the child does:
it returns a :class:`SandboxResult` with ``error`` / ``limit`` set, within the time limit plus a
small grace.

Where the boundary cannot be set up (no bubblewrap, user namespaces disabled, no libseccomp),
:class:`Sandbox` refuses to start with :class:`SandboxUnavailable`, which says what is missing.
``unsafe=True`` (``ARAG_RLM_CODE_MODE_UNSAFE=true``) runs the child without the OS boundary,
with a loud warning: only the Python guard and the resource limits remain, which is not a
security boundary.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from tools.sandbox._cgroup import cgroup_problem
from tools.sandbox._isolation import CONTEXT_PATH, SCRATCH, Jail, Jailed, isolation_problem, release, wait_for

__all__ = ["DEFAULT_IMPORTS", "Sandbox", "SandboxLimits", "SandboxResult", "SandboxUnavailable"]

log = logging.getLogger(__name__)

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
_CHILD = Path(__file__).with_name("_child.py")
_GRACE_S = 1.0
"""How long a child that said it is done may take to exit, and the wait for its tree to go."""
_TEARDOWN_S = 15.0
"""The longest wait for the last processes of a run to be gone (a kernel teardown of a tmpfs the
code filled with files can take seconds; the memory cgroup bounds how many it can make)."""
_ERROR_CHARS = 4_000
_UNSAFE_WARNING = (
    "code mode is running WITHOUT OS isolation (ARAG_RLM_CODE_MODE_UNSAFE): model-written code runs "
    "as this user with only an in-process Python guard, which the code can switch off. Use it only "
    "with code you would run yourself."
)


class SandboxUnavailable(RuntimeError):  # noqa: N818 - reads as a state, like FileNotFoundError
    """The OS boundary cannot be set up on this machine; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    timeout_s: float = 30.0
    """Wall-clock seconds of the code itself (sub-model calls excluded)."""
    cpu_s: int = 20
    """CPU seconds of each process of the code."""
    memory_mb: int = 1024
    """Address space of each process of the code."""
    output_chars: int = 20_000
    """Printed output kept; the rest is counted and dropped."""
    answer_chars: int = 100_000
    """Longest answer ``submit()`` passes back (longer ones are cut)."""
    prompt_chars: int = 200_000
    """Longest ``llm_query`` prompt (longer ones are cut)."""
    file_mb: int = 16
    """Largest file the code may write."""
    disk_mb: int = 64
    """Size of the tmpfs that is the code's only writable place."""
    open_files: int = 64
    """Open file descriptors per process."""
    processes: int = 16
    """Processes and threads of the code at once (``RLIMIT_NPROC`` in its own user namespace)."""
    tree_memory_mb: int = 1024
    """Memory of all the run's processes together, kernel memory and the tmpfs included (a memory
    cgroup, where one can be made: see ``tools/sandbox/_cgroup.py``)."""
    wall_s: float = 300.0
    """Wall-clock seconds of the whole run, time spent answering ``llm_query`` included."""
    max_llm_queries: int = 100


@dataclass(frozen=True, slots=True)
class SandboxResult:
    stdout: str
    error: str | None
    submitted: str | None
    dropped_chars: int = 0
    llm_queries: int = 0
    limit: str | None = None
    """What stopped the code: ``time``, ``cpu``, ``memory``, ``output``, ``file``, ``seccomp``,
    ``protocol``, ``start`` (the sandbox could not be started) or ``None``."""

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


class _Ready(BaseModel):
    """The child's first line: it runs, bound to die with its parent; only now is the code sent."""

    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["ready"]


class _LlmQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["llm_query"]
    prompt: str


class _Done(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["done"]
    stdout: str
    error: str | None
    submitted: str | None
    dropped: int = Field(ge=0, le=10**15)


_MESSAGE: TypeAdapter[_Ready | _LlmQuery | _Done] = TypeAdapter(
    Annotated[_Ready | _LlmQuery | _Done, Field(discriminator="type")]
)


class _Violation(Exception):  # noqa: N818 - internal signal, never leaves this module
    pass


class Sandbox:
    """Runs Python in a separate process behind the OS boundary; ``llm_query`` reaches the caller
    over a pipe.

    Args:
        limits: Time, CPU, memory, output, disk and process limits of each run.
        imports: Modules the code may import (the Python guard's allowlist).
        unsafe: Run without the OS boundary (only where it cannot be set up; warns loudly).

    Raises:
        SandboxUnavailable: The OS boundary cannot be set up here and ``unsafe`` is not set.
    """

    def __init__(
        self, limits: SandboxLimits | None = None, *, imports: tuple[str, ...] = DEFAULT_IMPORTS, unsafe: bool = False
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.imports = imports
        self.unsafe = unsafe
        if unsafe:
            warnings.warn(_UNSAFE_WARNING, RuntimeWarning, stacklevel=2)
            log.warning(_UNSAFE_WARNING)
            self._jail: Jail | None = None
            return
        problem = isolation_problem()
        if problem is not None:
            msg = (
                f"code mode needs OS isolation and it is not available here: {problem}. "
                "ARAG_RLM_CODE_MODE_UNSAFE=true runs the code without it (not a security boundary)."
            )
            raise SandboxUnavailable(msg)
        self._jail = Jail(disk_mb=self.limits.disk_mb, tree_memory_mb=self.limits.tree_memory_mb)
        if (why := cgroup_problem()) is not None:
            log.warning(
                "code mode: no memory cgroup for the sandbox (%s): its processes together are not capped at "
                "%d MB, only each one's address space; run as root or give this process a delegated cgroup",
                why,
                self.limits.tree_memory_mb,
            )

    @property
    def isolated(self) -> bool:
        """True when runs are behind the OS boundary."""
        return self._jail is not None

    @property
    def memory_capped(self) -> bool:
        """True when each run's processes are capped together (a memory cgroup per run)."""
        return self.isolated and cgroup_problem() is None

    def run(self, code: str, *, context: str = "", llm_query: Callable[[str], str] | None = None) -> SandboxResult:
        """Run ``code`` with ``context`` bound to the variable ``context``. Never raises for what
        the code does; the result says what happened."""
        started: Jailed | None = None
        scratch: str | None = None
        try:
            data = context.encode("utf-8", "replace")
            if self._jail is not None:
                started = self._jail.start(_CHILD.read_bytes(), data)
                header = self._header(code, CONTEXT_PATH, SCRATCH)
            else:
                scratch = tempfile.mkdtemp(prefix="arag-sandbox-")
                started = self._start_unsafe(scratch, data)
                header = self._header(code, str(Path(scratch, "context.txt")), scratch)
            return _Session(self.limits, started, llm_query).run(header)
        except OSError as exc:
            return SandboxResult("", f"the sandbox could not be started: {exc}", None, limit="start")
        finally:
            if started is not None:
                _kill_tree(started)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    def _header(self, code: str, context_path: str, tmpdir: str) -> bytes:
        limits = self.limits
        header = {
            "code": code.encode("utf-8", "replace").decode("utf-8"),
            "context_path": context_path,
            "tmpdir": tmpdir,
            "allowed": list(self.imports),
            "output_chars": limits.output_chars,
            "answer_chars": limits.answer_chars,
            "prompt_chars": limits.prompt_chars,
            "error_chars": _ERROR_CHARS,
            "limits": {
                "cpu_s": limits.cpu_s,
                "memory_mb": limits.memory_mb,
                "file_mb": limits.file_mb,
                "open_files": limits.open_files,
                "processes": limits.processes if self.isolated else _unsafe_processes(limits.processes),
            },
        }
        return (json.dumps(header) + "\n").encode("utf-8")

    def _start_unsafe(self, scratch: str, context: bytes) -> Jailed:
        Path(scratch, "context.txt").write_bytes(context)
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and file
            [sys.executable, "-I", "-S", "-B", str(_CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=scratch,
            env={"HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8"},
            start_new_session=True,
        )
        return Jailed(process, None, None)


def _unsafe_processes(processes: int) -> int:
    """Without a user namespace RLIMIT_NPROC counts all of this user's processes."""
    if os.geteuid() == 0:
        return processes  # not enforced for root at all; unsafe mode says so
    mine = 0
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and entry.stat().st_uid == os.geteuid():
                mine += 1
    return mine + processes


class _Session:
    """One run's conversation with the child: a single-threaded loop over non-blocking pipes."""

    def __init__(self, limits: SandboxLimits, started: Jailed, llm_query: Callable[[str], str] | None) -> None:
        self.limits = limits
        self.started = started
        self.process = started.process
        self.llm_query = llm_query
        self.queries = 0
        # Six bytes per character is JSON's worst case (\u0000-style escapes), plus the envelope.
        self.line_cap = 6 * (limits.output_chars + limits.answer_chars + limits.prompt_chars + _ERROR_CHARS) + 4096
        self.stderr = b""

    def run(self, header: bytes) -> SandboxResult:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        stdin, stdout, stderr = self.process.stdin.fileno(), self.process.stdout.fileno(), self.process.stderr.fileno()
        for fd in (stdin, stdout, stderr):
            os.set_blocking(fd, False)
        # The header (the code) goes only after the child's "ready": a caller killed while
        # bubblewrap still sets the namespace up (when the child could miss its parent-death
        # signal) has then sent no code, and the child exits on its stdin's end.
        pending, ready = b"", False  # bytes still to write to the child
        buffer = bytearray()
        reading = {stdout, stderr}
        spent = 0.0  # seconds of code time so far (llm_query time excluded)
        mark = began = time.monotonic()
        timeout, wall = self.limits.timeout_s, self.limits.wall_s
        while True:
            now = time.monotonic()
            remaining = timeout - spent - (now - mark)
            if remaining <= 0:
                if self._oom():
                    return _stopped("memory", f"the run's processes went over {self.limits.tree_memory_mb} MB together")
                return _stopped("time", f"the code ran longer than {timeout:g} s")
            if now - began >= wall:
                return _stopped("time", f"the run took longer than {wall:g} s with its llm_query calls")
            writing = [stdin] if pending else []
            readable, writable = wait_for(reading, writing, min(remaining, wall - (now - began)))
            if writable:
                try:
                    pending = pending[os.write(stdin, pending[: 1 << 16]) :]
                except BlockingIOError:
                    pass
                except OSError:  # the child closed its stdin: it can still report or die
                    pending = b""
            if stderr in readable and (chunk := _read(stderr)) is not None:
                if not chunk:
                    reading.discard(stderr)
                self.stderr = (self.stderr + chunk)[:4096]
            if stdout not in readable or (chunk := _read(stdout)) is None:
                continue
            if not chunk:
                return self._ended()
            buffer += chunk
            try:
                while (end := buffer.find(b"\n")) >= 0:
                    line = bytes(buffer[:end])
                    del buffer[: end + 1]
                    message = self._parse(line)
                    if isinstance(message, _Ready):
                        if ready:
                            raise _Violation("a second 'ready'")
                        pending, ready = header, True
                        continue
                    if not ready:
                        raise _Violation("a message before 'ready'")
                    if isinstance(message, _Done):
                        return self._done(message)
                    if pending:
                        raise _Violation("a request came before the reply to the last one was read")
                    spent += time.monotonic() - mark
                    pending = (json.dumps(self._answer(message.prompt)) + "\n").encode("utf-8")
                    mark = time.monotonic()
                if len(buffer) > self.line_cap:
                    raise _Violation(f"a message longer than {self.line_cap} bytes")
            except _Violation as exc:
                return _stopped("protocol", f"protocol violation: {exc}", prefix="")

    def _parse(self, line: bytes) -> _Ready | _LlmQuery | _Done:
        if len(line) > self.line_cap:
            raise _Violation(f"a message longer than {self.line_cap} bytes")
        try:
            # Lone surrogates (JSON allows "\ud800") would break every caller that encodes the text.
            data = json.loads(line.decode("utf-8"), object_hook=_clean_strings)
            message = _MESSAGE.validate_python(data)
        except (ValueError, RecursionError, ValidationError) as exc:  # bad UTF-8, JSON, huge ints, schema
            raise _Violation(f"not a valid message ({type(exc).__name__})") from None
        limits = self.limits
        if isinstance(message, _LlmQuery):
            _check_length("prompt", message.prompt, limits.prompt_chars)
        elif isinstance(message, _Done):
            _check_length("stdout", message.stdout, limits.output_chars)
            _check_length("error", message.error, _ERROR_CHARS)
            _check_length("submitted", message.submitted, limits.answer_chars)
        return message

    def _answer(self, prompt: str) -> dict[str, str]:
        self.queries += 1
        if self.llm_query is None:
            return {"error": "llm_query is not available in this run"}
        if self.queries > self.limits.max_llm_queries:
            return {"error": f"the code used its {self.limits.max_llm_queries} llm_query calls"}
        try:
            return {"text": self.llm_query(prompt)}
        except Exception as exc:  # the code sees the failure of its sub-call as an exception
            return {"error": f"{type(exc).__name__}: {exc}"}

    def _done(self, message: _Done) -> SandboxResult:
        error = message.error
        limit = "memory" if (error or "").startswith("MemoryError") else "output" if message.dropped else None
        if limit is None and error and "File too large" in error:
            limit = "file"
        if self._oom():  # a process of the code's was killed, not the child
            limit = "memory"
            error = error or f"a process of the run was killed: together they went over {self.limits.tree_memory_mb} MB"
        return SandboxResult(
            stdout=message.stdout,
            error=error,
            submitted=message.submitted,
            dropped_chars=message.dropped,
            llm_queries=self.queries,
            limit=limit,
        )

    def _oom(self) -> bool:
        group = self.started.cgroup
        return group is not None and group.oom_killed()

    def _ended(self) -> SandboxResult:
        """The child closed its stdout without a ``done``: it died or was killed by a limit."""
        try:
            code = self.process.wait(timeout=_GRACE_S)
        except subprocess.TimeoutExpired:
            return _stopped("protocol", "protocol violation: the code closed its output without reporting", prefix="")
        # bubblewrap passes on the child's exit status; a signal shows as 128 + its number.
        signalled = -code if code < 0 else code - 128 if code > 128 else 0
        limits = self.limits
        if self._oom():
            return _stopped("memory", f"the run's processes went over {limits.tree_memory_mb} MB together")
        # From here on the exit status is the child's own: it could pick any of these by exiting.
        if code == 0:
            return _stopped("protocol", "protocol violation: the code exited without reporting", prefix="")
        if signalled in (signal.SIGXCPU, signal.SIGKILL):
            return _stopped("cpu", f"the code used more than {limits.cpu_s} s of CPU")
        if signalled == signal.SIGXFSZ:
            return _stopped("file", f"the code wrote a file larger than {limits.file_mb} MB")
        if signalled == signal.SIGSYS:
            return _stopped("seccomp", "the code made a system call the sandbox forbids (killed by seccomp)")
        detail = self.stderr.decode("utf-8", "replace").strip().splitlines()
        why = f": {detail[-1][:300]}" if detail else ""
        return _stopped("memory", f"the sandbox process ended without reporting (exit code {code}){why}")


def _read(fd: int) -> bytes | None:
    """What the pipe holds now (``b""`` at its end, ``None`` if nothing is there yet)."""
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _clean_strings(obj: dict[str, object]) -> dict[str, object]:
    return {k: v.encode("utf-8", "replace").decode("utf-8") if isinstance(v, str) else v for k, v in obj.items()}


def _check_length(field: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise _Violation(f"{field} longer than {limit} characters")


def _stopped(limit: str, why: str, *, prefix: str = "stopped: ") -> SandboxResult:
    return SandboxResult(stdout="", error=f"{prefix}{why}", submitted=None, limit=limit)


def _kill_tree(started: Jailed) -> None:
    """Kill every process of the run and wait until they are gone.

    The namespace's pid 1 first: the kernel then kills the rest of the namespace, and bubblewrap,
    its parent, reaps it and exits (no zombie) once the teardown is done, which takes seconds
    when the code filled the tmpfs with files. Then bubblewrap's process group, if it is still
    there, and whatever the run's cgroup still holds.
    """
    process, pidfd = started.process, started.pidfd
    try:
        if pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=_TEARDOWN_S)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if pidfd is not None and process.returncode == -signal.SIGKILL:
            # bubblewrap did not reap pid 1 itself: it goes to us if we are a subreaper or pid 1.
            wait_for([pidfd], timeout=_TEARDOWN_S)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
    finally:
        if pidfd is not None:
            os.close(pidfd)
        if started.cgroup is not None and not started.cgroup.destroy(wait_s=_TEARDOWN_S):
            log.warning(
                "sandbox cgroup %s not removed after %.0f s (processes still in it: %s)",
                started.cgroup.path,
                _TEARDOWN_S,
                started.cgroup.pids(),
            )
        release(started)
