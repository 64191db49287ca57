"""Loading files in a child process with a time and a memory limit.

Parsers are where hostile files bite: Python's ``html.parser`` takes quadratic time on some
inputs (a 120 KB file ran for minutes), a spreadsheet of a million small rows expands to
gigabytes, a PDF parser can loop. A guard inside the parsing process cannot stop those, so files
are parsed by a :class:`LoaderProcess`: a child Python under an address-space limit
(``RLIMIT_AS``), given one file at a time and killed when a file takes longer than the timeout.
A file that times out, runs out of memory or kills its parser is that file's
:class:`~tools.ingest.loaders.LoadError`; the next file gets a fresh child.

The parent treats the child as hostile (it parses attacker-made files): requests and replies are
single JSON lines, not pickles (a pickle from a subverted child would run code in the parent),
replies are size-capped and type-checked, and anything else ends the child.

The child imports only the loaders: it starts with ``tools`` and ``tools.ingest`` as bare
namespace modules, so their ``__init__`` files (the store, the embeddings, the long-context
tools: seconds of imports) never run there, and no user ``__main__`` is re-imported (as
multiprocessing's start methods would).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from tools.ingest.loaders import Document, Loaded, LoadError

__all__ = ["LoaderProcess"]

_MAX_REPLY = 2 * 2**30

_BOOTSTRAP = """
import sys, types
root = sys.argv[1]
for name, path in (("tools", root), ("tools.ingest", root + "/ingest")):
    module = types.ModuleType(name)
    module.__path__ = [path]
    sys.modules[name] = module
from tools.ingest._isolated import serve
serve()
"""


class LoaderProcess:
    """Loads files one at a time in a child process; reuse it for many files, :meth:`close` it after.

    Args:
        timeout_s: Longest a file may take to load.
        memory_mb: Address-space limit of the child (None: no limit).
        max_bytes: Refuse files larger than this (as :func:`~tools.ingest.loaders.load_file`).
    """

    def __init__(self, *, timeout_s: float, memory_mb: int | None, max_bytes: int | None) -> None:
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.max_bytes = max_bytes
        self._child: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._stderr: IO[bytes] | None = None

    def load(self, path: Path, identity: tuple[int, int] | None = None) -> Loaded:
        """Load one file in the child; raises :class:`LoadError` for every way it can fail."""
        child = self._running()
        request = {"path": str(path), "identity": list(identity) if identity else None}
        try:
            assert child.stdin is not None
            child.stdin.write(json.dumps(request).encode() + b"\n")
            child.stdin.flush()
        except OSError:
            self._stop()
            raise LoadError(path, "the loader process could not be reached; try again") from None
        line, why = self._read_line(child)
        if line is None:
            self._stop()
            raise LoadError(path, why)
        try:
            return _parse_reply(path, line)
        except LoadError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            self._stop()
            raise LoadError(path, f"the loader process answered out of protocol ({exc}); stopped") from None

    def _running(self) -> subprocess.Popen[bytes]:
        if self._child is not None and self._child.poll() is None:
            return self._child
        self._stop()
        root = str(Path(__file__).resolve().parents[1])
        config = json.dumps({"max_bytes": self.max_bytes, "memory": self.memory_mb * 2**20 if self.memory_mb else None})
        self._child = subprocess.Popen(  # noqa: S603 - our interpreter, our bootstrap, no shell
            [sys.executable, "-c", _BOOTSTRAP, root, config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file(),
            start_new_session=True,  # Ctrl-C reaches the parent, which stops the child
            close_fds=True,
        )
        assert self._child.stdout is not None
        os.set_blocking(self._child.stdout.fileno(), False)
        self._buffer = b""
        return self._child

    def _read_line(self, child: subprocess.Popen[bytes]) -> tuple[bytes | None, str]:
        """One reply line, or None and the reason (time out, death, oversized reply)."""
        stdout: IO[bytes] | None = child.stdout
        assert stdout is not None
        deadline = time.monotonic() + self.timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, (
                        f"took longer than {self.timeout_s:g} s to load and was stopped; "
                        "raise ARAG_INGEST_FILE_TIMEOUT to give it longer"
                    )
                if not selector.select(timeout=min(left, 1.0)):
                    continue
                piece = os.read(stdout.fileno(), 1 << 20)
                if not piece:
                    return None, self._death(child)
                self._buffer += piece
                if len(self._buffer) > _MAX_REPLY:
                    return None, "its text is over 2 GB; left out"
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line, ""

    def _stderr_file(self) -> IO[bytes]:
        """Where the child's stderr goes: a temporary file, whose last line explains a death."""
        if self._stderr is not None:
            self._stderr.close()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - kept open for the child's life
        return self._stderr

    def _last_words(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - 2000))
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return f": {lines[-1][:300]}" if lines else ""

    def _death(self, child: subprocess.Popen[bytes]) -> str:
        try:
            code = child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the loader process closed its output without answering"
        if code < 0:
            name = signal.Signals(-code).name
            return f"its parser was killed by {name} (out of memory? raise ARAG_INGEST_FILE_MEMORY_MB)"
        return f"its parser exited (code {code}) before answering{self._last_words()}"

    def _stop(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def close(self) -> None:
        """Stop the child."""
        self._stop()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> LoaderProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse_reply(path: Path, line: bytes) -> Loaded:
    """A reply, checked field by field: the child is not trusted to be well-behaved."""
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise TypeError("not an object")
    if reply.get("ok") is False:
        reason = reply["reason"]
        if not isinstance(reason, str):
            raise TypeError("reason is not text")
        raise LoadError(path, reason[:2000])
    documents = []
    for fields in reply["documents"]:
        doc_id, text, title, doc_path, metadata = fields
        if not all(isinstance(v, str) for v in (doc_id, text, title, doc_path)) or not isinstance(metadata, dict):
            raise TypeError("a document of the wrong shape")
        documents.append(Document(doc_id, text, title, doc_path, metadata))
    warnings = reply["warnings"]
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        raise TypeError("warnings are not a list of text")
    return Loaded(documents, warnings)


def serve() -> None:  # pragma: no cover - runs in the child
    """The child: load each file it is asked for; one JSON line in, one JSON line out."""
    import resource

    from tools.ingest.loaders import load_file

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = json.loads(sys.argv[2])
    if config["memory"]:
        resource.setrlimit(resource.RLIMIT_AS, (config["memory"], config["memory"]))
    out = sys.stdout.buffer
    for raw in sys.stdin.buffer:
        request = json.loads(raw)
        identity = tuple(request["identity"]) if request["identity"] else None
        encoded = None
        with contextlib.suppress(MemoryError):  # answered below, once the exception and its frames are gone
            encoded = _answer(load_file, request["path"], config["max_bytes"], identity)
        if encoded is None:
            gc.collect()
            encoded = json.dumps({"ok": False, "reason": _OUT_OF_MEMORY}).encode()
        out.write(encoded + b"\n")
        out.flush()


_OUT_OF_MEMORY = "ran out of memory while loading (raise ARAG_INGEST_FILE_MEMORY_MB)"


def _answer(  # pragma: no cover - runs in the child
    load_file: Any, path: str, max_bytes: int | None, identity: tuple[int, int] | None
) -> bytes:
    try:
        loaded = load_file(path, max_bytes=max_bytes, identity=identity)
        documents = [[d.doc_id, d.text, d.title, d.path, d.metadata] for d in loaded.documents]
        warnings = loaded.warnings
        del loaded  # the documents are copied: the parsed objects may be what filled the memory
        return json.dumps({"ok": True, "documents": documents, "warnings": warnings}).encode()
    except LoadError as exc:
        reason = exc.reason
    except MemoryError:
        reason = _OUT_OF_MEMORY
    except BaseException as exc:  # the parent must get an answer for every file
        reason = f"failed to load: {type(exc).__name__}: {exc}"
    # Here, after the except blocks: the traceback and the memory its frames hold are released.
    gc.collect()
    return json.dumps({"ok": False, "reason": reason}).encode()
