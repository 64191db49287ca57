"""Agent runs behind ``arag serve``: which agent answers a request, admission, and the worker
that turns the agent's events into the items responses are made from.

- :class:`ServerAgents`: the agents by model name (``rag``, ``react``, ``rlm``).
- :func:`plan`: a request checked against its agent, as a run not yet started. ``rag`` and
  ``react`` continue a stored thread (``thread_id``) or read the conversation sent whole; each
  keeps its threads in its own namespace of the shared thread store (:mod:`agents._threads`),
  so one thread id used with both is two threads, and the id is the client's as sent. ``rlm``
  reads the long text from the messages (:func:`agents.serve.chat.long_text`); a first message
  that is a pasted text without a question is acknowledged ("Got N words of text; ask a
  question about it", exit reason ``acknowledged``) with nothing run.
- :class:`Admission`: at most ``ARAG_SERVER_MAX_RUNS`` runs at once and ``ARAG_SERVER_MAX_QUEUE``
  waiting; past that a 429 with ``Retry-After``.
- :class:`Runs`: a run slot, then the run in a worker thread, its items passed to the event loop
  until the end or the request's deadline (504); leaving early stops the run at its next event.

Run items: ``{"type": "status", "text", "data"}`` (a step or tool call as one line),
``{"type": "draft", "text"}`` (answer tokens, not yet verified), ``{"type": "final", "answer",
"citations", "exit_reason", "usage", "thread_id", "error"}`` and ``{"type": "failed",
"error_id"}`` (the run raised; the log has the exception under that id; with ``"unavailable"``,
the message of a thread store that stopped answering: a 503).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from agents._owner import OwnsResources
from agents._thread_store import ThreadStore, is_unavailable, unavailable_message
from agents.build import build_agents
from agents.events import AgentEvent, AgentResult, describe
from agents.rag_agent import RagAgent
from agents.react_agent import ReactAgent
from agents.rlm_agent import RlmAgent
from agents.serve.approvals import approval_text, parse_command
from agents.serve.chat import long_text, plain_opening
from agents.serve.open_webui import AttachedSource, merge_attached
from agents.serve.wire import ApiError, ChatRequest, log_failure
from agents.settings import Settings
from tools import tracing

__all__ = ["MODEL_NAMES", "Admission", "Run", "Runs", "ServerAgents", "plan", "resume_plan"]

MODEL_NAMES = ("rag", "react", "rlm")

Run = Callable[[], Iterator[dict[str, Any]]]
"""A planned run: called in a worker thread, it yields the run items."""

_END = object()


@dataclass
class ServerAgents(OwnsResources):
    """The agents the server runs, by model name; ``None`` where one is not available, with
    the reason in ``unavailable``."""

    rag: RagAgent | None = None
    react: ReactAgent | None = None
    rlm: RlmAgent | None = None
    unavailable: dict[str, str] = field(default_factory=dict)
    owned: list[Any] = field(default_factory=list)
    thread_store: ThreadStore | None = None
    """Where ``rag`` and ``react`` keep threads; checked before a run that continues one."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerAgents:
        """One store, retriever, chat model and thread database shared by all agents
        (:func:`agents.build.build_agents`)."""
        built = build_agents(settings, threads=True)
        agents = cls(
            rag=built.rag, react=built.react, rlm=built.rlm, owned=built.owned, thread_store=built.thread_store
        )
        if built.react is None:
            agents.unavailable["react"] = (
                "model 'react' needs a tool-calling chat model: set ARAG_CHAT_MODEL (and ARAG_OPENAI_BASE_URL for "
                "a local server), then restart `arag serve`; model 'rag' works without one"
            )
        return agents

    def get(self, name: str) -> RagAgent | ReactAgent | RlmAgent:
        agent = {"rag": self.rag, "react": self.react, "rlm": self.rlm}.get(name)
        if agent is not None:
            return agent
        if name in self.unavailable:
            raise ApiError(400, self.unavailable[name], code="model_not_available", param="model")
        raise ApiError(
            404,
            f"the model {name!r} does not exist; use one of {self.names()} (GET /v1/models lists them)",
            code="model_not_found",
            param="model",
        )

    def names(self) -> list[str]:
        return [n for n in MODEL_NAMES if getattr(self, n) is not None]


def plan(
    agents: ServerAgents,
    body: ChatRequest,
    question: str,
    history: list[BaseMessage],
    attached: Sequence[AttachedSource] = (),
) -> Run:
    """Check the request against its agent and return the run, not yet started.

    ``attached`` are the sources a front end sent with the question (Open WebUI's RAG
    template): ``rlm`` reads them as its text when no earlier message holds one; ``rag`` and
    ``react`` answer from them as well as from what they retrieve
    (:func:`agents.serve.open_webui.merge_attached`).

    Raises:
        ApiError: An unknown or unavailable model, a thread the agent cannot keep, or (``rlm``)
            no text to read.
    """
    agent = agents.get(body.model)
    if isinstance(agent, RlmAgent):
        if body.thread_id is not None:
            raise ApiError(
                400, "model 'rlm' keeps no threads; send the text and question as messages", param="thread_id"
            )
        if attached and not any(isinstance(m, HumanMessage) for m in history):
            context = "\n\n".join(s.text for s in attached)
            return lambda: _run_items(agent.stream(question, context=context))
        if (words := _text_only(question, history)) is not None:
            return lambda: iter([_acknowledge(words)])
        try:
            context, question = long_text(question, history)
        except ValueError as exc:
            raise ApiError(400, str(exc), param="messages") from None
        return lambda: _run_items(agent.stream(question, context=context))
    if body.thread_id is not None and agent.checkpointer is None:
        raise ApiError(400, f"model {body.model!r} keeps no threads here; leave out thread_id", param="thread_id")
    thread, past = (body.thread_id, None) if body.thread_id is not None else (None, history)

    def run() -> Iterator[dict[str, Any]]:
        if isinstance(agent, ReactAgent) and agent.approve and thread and (waiting := agent.pending(thread)):
            return _approval_turn(agent, thread, question, waiting)
        items = _run_items(agent.stream(question, thread_id=thread, history=past))
        return _with_attached(question, items, attached) if attached else items

    return run


def resume_plan(agents: ServerAgents, model: str, thread_id: str, decision: Any) -> Run:
    """The run that resumes a paused ``react`` thread with ``decision`` (``POST
    /v1/threads/{id}/approval``).

    Raises:
        ApiError: Not the ``react`` model, or a ``react`` that asks no approvals.
    """
    agent = agents.get(model)
    if not isinstance(agent, ReactAgent):
        raise ApiError(400, f"model {model!r} runs no tools to approve; use 'react'", param="model")
    if not agent.approve:
        raise ApiError(400, "no tool needs approval here (ARAG_TOOLS_APPROVE is not set)", param="model")

    def run() -> Iterator[dict[str, Any]]:
        return _run_items(agent.stream_resume(thread_id, decision))

    return run


def _approval_turn(
    agent: ReactAgent, thread: str, message: str, waiting: list[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """A chat message to a thread whose run waits for approval: ``/approve``, ``/reject`` or
    ``/edit`` resume it; anything else (or a command that cannot apply) gets the waiting calls
    again and runs nothing."""
    decision = parse_command(message, waiting)
    if isinstance(decision, dict):
        return _run_items(agent.stream_resume(thread, decision))
    answer = approval_text(waiting, thread)
    if isinstance(decision, str):
        answer = f"{decision}. {answer}"
    final: dict[str, Any] = {
        "type": "final",
        "answer": answer,
        "citations": [],
        "exit_reason": "awaiting_approval",
        "usage": {},
        "thread_id": thread,
        "error": None,
        "pending": waiting,
    }
    return iter([final])


_QUESTION_WORDS = 40
"""A first message's last paragraph longer than this, without a question mark, is text, not a question."""


def _text_only(message: str, history: Sequence[BaseMessage]) -> int | None:
    """The word count of a first ``rlm`` message that is a pasted text without a question, or ``None``."""
    if any(isinstance(m, HumanMessage) and str(m.content).strip() for m in history):
        return None
    last = message.strip().rpartition("\n\n")[2]
    if "?" in last or len(last.split()) <= _QUESTION_WORDS:
        return None  # a question last (after a text, or alone: long_text says how to send the text)
    return len(message.split())


def _acknowledge(words: int) -> dict[str, Any]:
    """The reply to a pasted text: nothing run, the text kept in the conversation for the next turn."""
    answer = f"Got {words} words of text; ask a question about it."
    return {
        "type": "final",
        "answer": answer,
        "citations": [],
        "exit_reason": "acknowledged",
        "usage": {},
        "thread_id": "",
        "error": None,
    }


def _with_attached(
    question: str, items: Iterator[dict[str, Any]], attached: Sequence[AttachedSource]
) -> Iterator[dict[str, Any]]:
    for item in items:
        if item["type"] == "final":
            merged = merge_attached(question, item, attached)
            item = {**merged, "answer": plain_opening(merged["answer"])}
        yield item


def _run_items(events: Iterator[AgentEvent]) -> Iterator[dict[str, Any]]:
    """Any agent's events (one vocabulary, :mod:`agents.events`) as run items."""
    for event in events:
        if event.kind in ("step", "tool"):
            yield {"type": "status", "text": describe(event), "data": event.data}
        elif event.kind == "token":  # a whole draft (kind "draft") adds nothing to its streamed tokens
            yield {"type": "draft", "text": event.text}
        elif event.kind == "result" and event.result is not None:
            yield _final(event.result)


def _final(result: AgentResult) -> dict[str, Any]:
    answer, error = result.answer or result.partial_answer, result.error
    pending = list(getattr(result, "pending", []))
    if pending:
        answer = approval_text(pending, result.thread_id)
    if not answer and error:
        answer = f"The run failed before an answer was written: {error}"
    final = {
        "type": "final",
        "answer": plain_opening(answer),
        "citations": result.citations,
        "exit_reason": result.exit_reason,
        "usage": dict(result.usage),
        "thread_id": result.thread_id,
        "error": error,
    }
    if pending:
        final["pending"] = pending
    return final


class Admission:
    """At most ``max_runs`` runs at once and ``max_queue`` waiting; past that, 429.

    Used from the event loop only, except :meth:`release`, which a finishing worker thread
    schedules onto the loop.
    """

    def __init__(self, max_runs: int, max_queue: int) -> None:
        self.max_runs = max_runs
        self.max_queue = max_queue
        self._slots = asyncio.Semaphore(max_runs)
        self.admitted = 0
        self.running = 0
        self._seconds: list[float] = []

    @property
    def waiting(self) -> int:
        return self.admitted - self.running

    def admit(self) -> None:
        if self.admitted >= self.max_runs + self.max_queue:
            wait = self.retry_after()
            raise ApiError(
                429,
                f"the server is busy ({self.running} runs, {self.waiting} waiting); retry in {wait} s",
                type="rate_limit_error",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(wait)},
            )
        self.admitted += 1

    async def acquire(self, timeout: float) -> None:
        """Wait for a slot; on failure the caller gives the admission up with :meth:`leave`."""
        await asyncio.wait_for(self._slots.acquire(), timeout)
        self.running += 1

    def release(self, seconds: float) -> None:
        self.running -= 1
        self.admitted -= 1
        self._slots.release()
        self._seconds = [*self._seconds[-49:], seconds]

    def leave(self) -> None:
        """Give up an admission that never got a slot."""
        self.admitted -= 1

    def retry_after(self) -> int:
        typical = sorted(self._seconds)[len(self._seconds) // 2] if self._seconds else 1.0
        return max(1, math.ceil(typical * (self.waiting + 1) / self.max_runs))


class Runs:
    """Admission and the worker threads that runs use; ``deadline_s`` is named in the 504."""

    def __init__(self, max_runs: int, max_queue: int, deadline_s: float) -> None:
        self.admission = Admission(max_runs, max_queue)
        self.pool = ThreadPoolExecutor(max_workers=max_runs, thread_name_prefix="arag-run")
        self.deadline_s = deadline_s

    async def start(self, deadline: float) -> None:
        """Wait for a run slot (admission already given); give the admission up if none comes."""
        try:
            await self.admission.acquire(max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            self.admission.leave()
            raise ApiError(
                504, "no run slot became free before the deadline", type="server_error", code="timeout"
            ) from None
        except BaseException:
            self.admission.leave()
            raise

    async def items(self, run: Run, deadline: float, *, parent: Any = None) -> AsyncIterator[dict[str, Any]]:
        """Run in a worker thread (a slot must be held) and pass its items on until the end or
        the deadline; leaving early (deadline, client gone) stops the run at its next event.
        ``parent`` (a span) is the parent of the run's spans."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()
        started = time.perf_counter()

        def put(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        traced: Run = (lambda: tracing.stepped(run(), parent)) if parent is not None else run
        future = loop.run_in_executor(self.pool, _work, traced, put, cancel)
        future.add_done_callback(lambda _: self.admission.release(time.perf_counter() - started))
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), max(deadline - time.monotonic(), 0.001))
                except TimeoutError:
                    raise ApiError(
                        504,
                        f"the run did not finish within {self.deadline_s:g} s (ARAG_SERVER_DEADLINE)",
                        type="server_error",
                        code="timeout",
                    ) from None
                if item is _END:
                    return
                yield item
        finally:
            cancel.set()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _work(run: Run, put: Callable[[Any], None], cancel: threading.Event) -> None:
    """The worker thread: the run's items to ``put`` until it ends or ``cancel`` is set, then the end mark."""
    stream: Iterator[dict[str, Any]] | None = None
    try:
        stream = run()
        for item in stream:
            if cancel.is_set():
                break
            put(item)
    except Exception as exc:  # the client gets an error object with this id, the log the exception
        failed = {"type": "failed", "error_id": log_failure("agent run", exc)}
        if is_unavailable(exc):  # the thread store went away mid-run: a 503, not the server's fault
            failed["unavailable"] = unavailable_message(None, exc)
        put(failed)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        put(_END)
