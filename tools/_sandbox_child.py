"""The sandboxed side of code mode: runs one piece of model-written Python and reports back.

Started by :class:`tools.sandbox.Sandbox` as ``python -I -S this_file`` with an empty environment,
in a temp dir, under CPU, memory, file-size and process limits. It uses the standard library
only. Protocol: one JSON header line on stdin; JSON lines on stdout (``llm_query`` requests,
then one ``done``); replies to ``llm_query`` arrive as JSON lines on stdin.

Defences, innermost last: builtins without ``open``/``exec``/``eval``/``compile``/``input``, an
``__import__`` that allows only listed modules, and an audit hook (which Python code cannot
remove) that refuses processes, sockets, ctypes, file access outside the temp dir, frame and
garbage-collector introspection, and any import not allowed, however the code reaches them
(``__subclasses__`` and ``__globals__`` tricks included).
"""

import builtins
import io
import json
import os
import sys
from typing import Any

_REAL_STDOUT = sys.stdout
_REAL_STDIN = sys.stdin

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
_ALLOWED_EVENTS = ("os.listdir", "os.scandir")  # checked against the temp dir below


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
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def value(self) -> str:
        return "".join(self.parts)


def _send(message: dict[str, Any]) -> None:
    _REAL_STDOUT.write(json.dumps(message) + "\n")
    _REAL_STDOUT.flush()


def main() -> None:
    header = json.loads(_REAL_STDIN.readline())
    tmp = os.path.realpath(header["tmpdir"])
    allowed = set(header["allowed"])
    with open(header["context_path"], encoding="utf-8") as handle:  # noqa: PTH123 - before lockdown, no pathlib
        context = handle.read()
    for name in sorted(allowed):
        __import__(name)
    try:
        code = compile(header["code"], "<model code>", "exec")
    except SyntaxError as exc:
        _send({"type": "done", "stdout": "", "error": f"SyntaxError: {exc}", "submitted": None, "dropped": 0})
        return

    submitted: list[str] = []

    def llm_query(prompt: str) -> str:
        """Ask a sub-model; returns its answer as text."""
        _send({"type": "llm_query", "prompt": str(prompt)})
        reply = json.loads(_REAL_STDIN.readline() or "{}")
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

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if phase[0] == "setup":
            return
        if event == "exec" and phase[0] == "start":
            phase[0] = "running"
            return
        if event == "open":
            path = args[0]
            if isinstance(path, int):
                return
            if isinstance(path, bytes):
                path = path.decode(errors="replace")
            real = os.path.realpath(str(path))
            if real != tmp and not real.startswith(tmp + os.sep):
                raise PermissionError(f"sandbox: access to {path!r} is not allowed (only the temp dir)")
            return
        if event in ("exec", "compile"):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import" and args[0].split(".")[0] not in allowed and args[0] not in sys.modules:
            raise PermissionError(f"sandbox: import of {args[0]!r} is not allowed")
        if event in _ALLOWED_EVENTS:
            real = os.path.realpath(str(args[0] if args and args[0] is not None else "."))
            if real == tmp or real.startswith(tmp + os.sep):
                return
            raise PermissionError(f"sandbox: {event} outside the temp dir is not allowed")
        if event.startswith(_BLOCKED_EVENTS):
            raise PermissionError(f"sandbox: {event} is not allowed")

    sys.addaudithook(audit)
    captured = _Capped(int(header["output_chars"]))
    error = None
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
        sys.stdout, sys.stderr = _REAL_STDOUT, sys.__stderr__
    _send(
        {
            "type": "done",
            "stdout": captured.value(),
            "error": error,
            "submitted": submitted[-1] if submitted else None,
            "dropped": captured.dropped,
        }
    )


if __name__ == "__main__":
    main()
