"""A real OpenAI-compatible inference server for integration tests: llama-cpp-python's server with
Gemma 3 270M, as ``make llm-install`` puts them in ``.llm/`` (a virtualenv of their own).

It is a BASE model: its answers are useless. It proves plumbing (requests the real server
accepts, caps it honours, tool calls that parse, runs that end) and never quality. Started on a
free loopback port with the flags measured for two cores (``chatml-function-calling``,
``--logits_all false``, two threads); stopped with SIGKILL when SIGTERM does not end it (the
server finishes a generation before it looks at a signal).

```python
with LlamaServer() as llm:
    replies = ReplyLog()
    model = llm.chat_model(max_tokens=64, callbacks=[replies])   # ChatOpenAI on it, no retries
    ...
    assert all(tokens <= 64 for tokens, _ in replies.replies)
```
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

from agents.testing._ports import free_port

__all__ = ["LLM_DIR", "LlamaServer", "ReplyLog", "missing_llama"]

LLM_DIR = Path(__file__).resolve().parents[2] / ".llm"
"""Where ``make llm-install`` puts the server's virtualenv and the model file."""
MODEL_FILE = "gemma3-270m-q4_k_m.gguf"


def missing_llama(root: Path = LLM_DIR) -> str | None:
    """Why the local inference server cannot start here (``None``: it can)."""
    if not (root / "venv" / "bin" / "python").exists():
        return f"no llama-cpp-python server in {root / 'venv'}: run `make llm-install` (about 4 minutes the first time)"
    if not (root / MODEL_FILE).exists():
        return f"no model file {root / MODEL_FILE}: run `make llm-install`"
    return None


class ReplyLog(BaseCallbackHandler):
    """A callback that keeps every reply's output tokens and finish reason, as the server reported
    them (``-1`` tokens: none reported): to check that no reply went over its cap."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, str | None]] = []

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                message = getattr(generation, "message", None)
                usage = getattr(message, "usage_metadata", None) or {}
                finish = (getattr(message, "response_metadata", None) or {}).get("finish_reason")
                self.replies.append((int(usage.get("output_tokens", -1)), finish))


class LlamaServer:
    """llama-cpp-python's OpenAI-compatible server on a free loopback port, for a ``with`` block.

    Args:
        root: The folder ``make llm-install`` filled (``.llm`` in the checkout).
        context: The model's context window in tokens (its prompt and its reply).
        threads: CPU threads for inference (two cores here: 2).
        start_timeout: Seconds to wait for the server to answer ``/v1/models``.
    """

    model = "gemma3-270m"
    """The model name the server answers to."""

    def __init__(
        self, root: Path = LLM_DIR, *, context: int = 8192, threads: int = 2, start_timeout: float = 60.0
    ) -> None:
        if (reason := missing_llama(root)) is not None:
            raise RuntimeError(reason)
        self.root = root
        self.port = free_port()
        self.context = context
        self.threads = threads
        self.start_timeout = start_timeout
        self._log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)  # noqa: SIM115
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The API root to give clients, e.g. ``http://127.0.0.1:40123/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def chat_model(
        self, *, max_tokens: int, timeout: float = 60.0, callbacks: Sequence[BaseCallbackHandler] = ()
    ) -> ChatOpenAI:
        """The real ``ChatOpenAI`` client on this server: replies capped at ``max_tokens``, no
        retries of its own (the agents' model client retries)."""
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=self.model,
            base_url=self.base_url,
            api_key="none",  # type: ignore[arg-type]
            max_retries=0,
            max_tokens=max_tokens,  # type: ignore[call-arg]
            timeout=timeout,
            callbacks=list(callbacks),
        )

    @property
    def log(self) -> str:
        """What the server printed so far (for a failing test's message)."""
        return Path(self._log.name).read_text(errors="replace")

    def start(self) -> None:
        command = [
            str(self.root / "venv" / "bin" / "python"),
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.root / MODEL_FILE),
            "--model_alias",
            self.model,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.context),
            "--n_threads",
            str(self.threads),
            "--chat_format",
            "chatml-function-calling",
            "--logits_all",
            "false",
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)  # noqa: S603
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                msg = f"the llama-cpp-python server exited with {self._process.returncode}:\n{self.log[-2000:]}"
                raise RuntimeError(msg)
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:  # noqa: S310 - loopback
                    if self.model in {m["id"] for m in json.load(response)["data"]}:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        msg = f"the llama-cpp-python server did not answer within {self.start_timeout:g} s:\n{self.log[-2000:]}"
        raise RuntimeError(msg)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        self.stop()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
