"""Serve an ASGI app on a loopback port from a thread, for tests that talk HTTP to ``arag serve``;
and a small two-source corpus behind the server's agents."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from langchain_core.embeddings import Embeddings
from langgraph.checkpoint.memory import InMemorySaver

from agents.rag_agent import RagAgent
from agents.rlm_agent import RlmAgent
from agents.serve import ServerAgents
from tools.ingest import Ingestor
from tools.ingest.loaders import Document
from tools.retrieval import Retriever
from tools.store import VectorStore

CORPUS = {
    "landmarks": (
        "Landmarks: how tall a tower is, when a bridge opened (Eiffel Tower, Golden Gate Bridge)",
        [
            ("eiffel", "Eiffel Tower", "The Eiffel Tower in Paris is 330 metres tall and was completed in 1889."),
            ("golden", "Golden Gate Bridge", "The Golden Gate Bridge in San Francisco opened in 1937."),
        ],
    ),
    "bees": (
        "Honeybees: the waggle dance of workers, queens, hives",
        [
            ("waggle", "Waggle dance", "The waggle dance tells other honeybees the direction and distance of food."),
            ("queen", "Queen bee", "A queen bee lays up to 2,000 eggs a day in spring."),
        ],
    ),
}


def ingest_corpus(store: VectorStore, embeddings: Embeddings) -> None:
    ingestor = Ingestor(store, embeddings)
    for source, (description, rows) in CORPUS.items():
        docs = [Document(doc_id=i, text=t, title=title, path=f"/corpus/{i}.txt") for i, title, t in rows]
        ingestor.ingest_documents(docs, source, description=description)


def offline_agents(store: VectorStore, embeddings: Embeddings) -> ServerAgents:
    """The server's agents without a chat model: ``rag`` (threads in memory) and ``rlm``."""
    ingest_corpus(store, embeddings)
    rag = RagAgent(Retriever(store=store, embeddings=embeddings, k=5), checkpointer=InMemorySaver())
    return ServerAgents(
        rag=rag,
        rlm=RlmAgent(None),
        unavailable={"react": "model 'react' needs a tool-calling chat model: set ARAG_CHAT_MODEL"},
    )


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) while the block runs; yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            msg = "the test server did not start"
            raise RuntimeError(msg)
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
