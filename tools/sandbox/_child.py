"""The sandboxed side of code mode: runs one piece of model-written Python and reports back.

Started by :class:`tools.sandbox.Sandbox` as ``python -I -S -B this_file`` inside the OS boundary
of ``tools/sandbox/_isolation.py`` (namespaces, uid 65534, seccomp, a read-only root and a small tmpfs).
It uses the standard library only. Protocol: ``ready`` on stdout, then one JSON header line on
stdin; JSON lines on stdout (``llm_query`` requests, then one ``done``); each reply to
``llm_query`` arrives as one JSON line on stdin before the next request may be sent.

What this script enforces, in order:

1. Resource limits (CPU seconds, address space, file size, open files, processes, pending
   signals, message queues, locked memory), set before the model's code is even compiled. The
   kernel holds them; the code cannot raise them again.
2. A Python-level guard, as an extra layer only: builtins without ``open``/``exec``/``eval``/
   ``compile``/``input``, an ``__import__`` that allows only listed modules, and an audit hook that
   refuses processes, sockets, ctypes and file access outside the scratch folder. The code runs in
   the same interpreter as this guard, so it CAN switch it off (frames reached through
   tracebacks or generators, ``sys.modules['__main__']``, any function's ``__globals__`` or
   ``__closure__``, monkeypatching): the guard turns honest mistakes into clear errors, and the
   operating system is the boundary. ``tests/test_sandbox_escapes.py`` switches it off on purpose.
"""

import builtins
import io
import json
import os
import resource
import sys
from typing import Any

_OUT = 1
_BLOCKED_EVENTS = (
    "os.",
    "subprocess.",
    "socket.",
    "ctypes.",
    "shutil.",
    "pty.",
    "sys._getframe",
    "sys._current_frames",
    "gc.get_",
    "builtins.input",
    "cpython.run_",
    "marshal.",
    "pickle.",
    "code.__new__",
    "function.__new__",
    "mmap.",
    "resource.",
    "signal.",
    "fcntl.",
    "urllib.",
    "http.",
    "ftplib.",
    "smtplib.",
    "webbrowser.",
    "sqlite3.",
)
_ALLOWED_EVENTS = ("os.listdir", "os.scandir")  # checked against the scratch folder below
_realpath = os.path.realpath  # taken before the code runs: a monkeypatched one is not used


class _Capped(io.TextIOBase):
    """Keeps the first ``limit`` characters written; counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def value(self) -> str:
        return "".join(self.parts)


def _clean(text: str, limit: int) -> str:
    """At most ``limit`` characters, lone surrogates replaced (the parent's schema refuses them)."""
    return text[:limit].encode("utf-8", "replace").decode("utf-8")


def _send(message: dict[str, Any]) -> None:
    data = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8")
    while data:
        data = data[os.write(_OUT, data) :]


def _read_line() -> bytes:
    line = bytearray()
    while not line.endswith(b"\n"):
        chunk = os.read(0, 1 << 16)
        if not chunk:
            break
        line += chunk
    return bytes(line)


def _set_limits(limits: dict[str, int]) -> None:
    memory = limits["memory_mb"] * 1024 * 1024
    file_size = limits["file_mb"] * 1024 * 1024
    for name, value in (
        ("RLIMIT_CPU", limits["cpu_s"]),
        ("RLIMIT_AS", memory),
        ("RLIMIT_FSIZE", file_size),
        ("RLIMIT_NOFILE", limits["open_files"]),
        ("RLIMIT_NPROC", limits["processes"]),
        ("RLIMIT_CORE", 0),
        # Queued signals and message queues are charged up to the namespace's owner on the host.
        ("RLIMIT_SIGPENDING", 64),
        ("RLIMIT_MSGQUEUE", 0),
        ("RLIMIT_MEMLOCK", 0),
    ):
        hard = value + 1 if name == "RLIMIT_CPU" else value  # SIGXCPU first, then SIGKILL
        resource.setrlimit(getattr(resource, name), (value, hard))


def main() -> None:
    # Nothing but the three pipes: bubblewrap leaves its --userns-block-fd pipe open (its writer is
    # closed, so it is harmless, but the code has no business with any other descriptor).
    os.closerange(3, 1 << 16)
    _send({"type": "ready"})  # the parent sends the code only now (see _runner._Session.run)
    header = json.loads(_read_line())
    _set_limits(header["limits"])
    tmp = _realpath(header["tmpdir"])
    allowed = frozenset(header["allowed"])
    error_chars, answer_chars = int(header["error_chars"]), int(header["answer_chars"])
    with open(header["context_path"], encoding="utf-8", errors="replace") as handle:  # noqa: PTH123 - no pathlib
        context = handle.read()
    for name in sorted(allowed):
        __import__(name)
    try:
        code = compile(header["code"], "<model code>", "exec")
    except (SyntaxError, ValueError) as exc:
        why = _clean(f"{type(exc).__name__}: {exc}", error_chars)
        _send({"type": "done", "stdout": "", "error": why, "submitted": None, "dropped": 0})
        return

    submitted: list[str] = []

    def llm_query(prompt: str) -> str:
        """Ask a sub-model; returns its answer as text."""
        _send({"type": "llm_query", "prompt": _clean(str(prompt), int(header["prompt_chars"]))})
        reply = json.loads(_read_line() or "{}")
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return str(reply.get("text", ""))

    def submit(answer: object) -> None:
        """End the run with this answer."""
        submitted.append(str(answer))

    def guarded_import(
        name: str,
        globals: dict[str, Any] | None = None,
        locals: dict[str, Any] | None = None,
        fromlist: tuple[str, ...] = (),
        level: int = 0,
    ) -> Any:
        if level != 0 or name.split(".")[0] not in allowed:
            raise ImportError(f"import of {name!r} is not allowed in the sandbox; allowed: {sorted(allowed)}")
        return builtins.__import__(name, globals, locals, fromlist, level)

    safe_builtins = {
        k: v
        for k, v in vars(builtins).items()
        if k not in ("open", "exec", "eval", "compile", "input", "breakpoint", "exit", "quit", "help", "__loader__")
    }
    safe_builtins["__import__"] = guarded_import
    namespace: dict[str, Any] = {"__builtins__": safe_builtins, "__name__": "__sandbox__", "context": context}
    namespace.update(llm_query=llm_query, submit=submit)

    phase = ["setup"]  # setup -> start (the one exec of the model's code) -> running

    def inside(path: object) -> bool:
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        if type(path) is not str:  # a str subclass can lie in __str__/__fspath__
            return False
        real = _realpath(path)
        return real == tmp or real.startswith(tmp + os.sep)

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if phase[0] == "setup":
            return
        if event == "exec" and phase[0] == "start":
            phase[0] = "running"
            return
        if event == "open":
            if isinstance(args[0], int) or inside(args[0]):
                return
            raise PermissionError(f"sandbox: access to {args[0]!r} is not allowed (only {tmp})")
        if event in ("exec", "compile"):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import" and args[0].split(".")[0] not in allowed and args[0] not in sys.modules:
            raise PermissionError(f"sandbox: import of {args[0]!r} is not allowed")
        if event in _ALLOWED_EVENTS:
            if inside(args[0] if args and args[0] is not None else "."):
                return
            raise PermissionError(f"sandbox: {event} outside the temp dir is not allowed")
        if event.startswith(_BLOCKED_EVENTS):
            raise PermissionError(f"sandbox: {event} is not allowed")

    sys.addaudithook(audit)
    captured = _Capped(int(header["output_chars"]))
    error: str | None = None
    sys.stdout = sys.stderr = captured
    phase[0] = "start"
    try:
        exec(code, namespace)  # noqa: S102 - the point of the sandbox
    except MemoryError:
        namespace.clear()
        error = "MemoryError: the code went over the sandbox's memory limit"
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    _send(
        {
            "type": "done",
            "stdout": _clean(captured.value(), int(header["output_chars"])),
            "error": None if error is None else _clean(error, error_chars),
            "submitted": _clean(submitted[-1], answer_chars) if submitted else None,
            "dropped": captured.dropped,
        }
    )


if __name__ == "__main__":
    main()
