"""The serving benchmark's phases run end to end against an in-process server (small numbers; the
real numbers come from ``python -m evals.bench_serve`` and are for evals/, not here)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agents.server import create_app
from agents.settings import Settings
from agents.testing import FakeEmbeddings
from evals.bench_serve import _check_429, abandon, burst, check_idle, load, percentiles
from tests.serving import offline_agents, running
from tools.store import QdrantStore

QUESTIONS = [
    "How tall is the Eiffel Tower?",
    "When did the Golden Gate Bridge open?",
    "What does the waggle dance tell?",
]


def _serve(store: QdrantStore, max_runs: int, max_queue: int, slow: float = 0.0) -> Any:
    agents = offline_agents(store, FakeEmbeddings())
    assert agents.rag is not None
    if slow:  # hold each run a little, so a burst certainly finds the slots taken
        stream = agents.rag.stream

        def slowed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            time.sleep(slow)
            yield from stream(*args, **kwargs)

        agents.rag.stream = slowed  # type: ignore[method-assign]
    return running(create_app(Settings(server={"max_runs": max_runs, "max_queue": max_queue}), agents=agents))


def test_percentiles() -> None:
    assert percentiles([]) == {"p50": None, "p95": None, "max": None}
    assert percentiles([5.0]) == {"p50": 5.0, "p95": 5.0, "max": 5.0}
    assert percentiles([float(i) for i in range(1, 101)]) == {"p50": 50.5, "p95": 95.0, "max": 100.0}


def test_load_admits_and_completes_every_chat(memory_store: QdrantStore) -> None:
    with _serve(memory_store, max_runs=2, max_queue=8) as url:
        result = asyncio.run(load(url, 6, timeout=30, questions=QUESTIONS))
        assert asyncio.run(check_idle(url))["idle"]
    assert (result["chats"], result["errors"], result["hangs"]) == (6, 0, 0), result["error_list"]
    for key in ("first_event_ms", "first_step_ms", "first_content_ms", "done_ms"):
        numbers = result[key]
        assert 0 < numbers["p50"] <= numbers["p95"] <= numbers["max"], key
    assert result["first_event_ms"]["max"] <= result["done_ms"]["max"]
    assert all(r["citations"] and r["content_chars"] for r in result["requests"])


def test_burst_past_the_cap_gets_429_and_abandoned_chats_free_their_slots(memory_store: QdrantStore) -> None:
    with _serve(memory_store, max_runs=1, max_queue=1, slow=0.3) as url:
        result = asyncio.run(burst(url, 6, timeout=30, questions=QUESTIONS))
        left = asyncio.run(abandon(url, 2, timeout=30, questions=QUESTIONS))
    assert result["problems"] == []
    assert result["status_200"] + result["status_429"] == 6
    assert result["status_429"] >= 3
    assert result["retry_after_s"]["min"] >= 1
    assert result["reply_429_ms"]["max"] < 5_000
    assert left["problems"] == []
    assert left["full_cap_after"] == {"chats": 2, "complete": 2}


RATE_LIMITED = {"message": "busy", "type": "rate_limit_error", "code": "rate_limit_exceeded"}


@pytest.mark.parametrize(
    ("retry_after", "error"),
    [(None, RATE_LIMITED), ("0", RATE_LIMITED), ("soon", RATE_LIMITED), ("2", None), ("2", {"message": "x"})],
)
def test_an_improper_429_is_a_problem(retry_after: str | None, error: dict[str, Any] | None) -> None:
    assert _check_429({"retry_after": retry_after, "error_object": error}) is not None
    assert _check_429({"retry_after": "2", "error_object": RATE_LIMITED}) is None
