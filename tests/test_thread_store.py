"""Threads in Postgres (``ARAG_THREADS_URL``): LangGraph's Postgres checkpointer over a real,
throwaway PostgreSQL server, shared by agents, server processes and workers; a database that
goes away is a 503 and the server recovers by itself; a worker killed mid-run loses no
committed step."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from langchain_core.messages import BaseMessage, HumanMessage
from pydantic import ValidationError

from agents._thread_store import ThreadStoreUnavailableError, open_thread_store, redacted
from agents.rag_agent import RagAgent
from agents.react_agent import ReactAgent
from agents.serve import ServerAgents, create_app
from agents.settings import Settings
from agents.testing import ChatReply, FakeEmbeddings, OpenAIStub, PostgresServer, function_model
from evals.bench_serve import ServerProcess, ingest
from tests.serving import ingest_corpus, running
from tools.retrieval import Retriever
from tools.store import QdrantStore

EIFFEL = "How tall is the Eiffel Tower?"


def _settings(url: str, **store: Any) -> Settings:
    return Settings(store={"threads_url": url, **store})


def _questions(messages: list[BaseMessage]) -> list[str]:
    return [m.text for m in messages if isinstance(m, HumanMessage)]


@pytest.fixture
def retriever() -> Iterator[Retriever]:
    store, embeddings = QdrantStore(":memory:"), FakeEmbeddings()
    ingest_corpus(store, embeddings)
    yield Retriever(store=store, embeddings=embeddings, k=5)
    store.close()


# -- settings and start-up -------------------------------------------------------------------


def test_threads_url_must_be_postgres_and_is_never_echoed() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(store={"threads_url": "mysql://root:hunter2@db/threads"})
    assert "must be a Postgres URL" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert Settings(store={"threads_url": "  "}).store.threads_url is None  # blank is unset


def test_redacted_leaves_out_the_password() -> None:
    assert redacted("postgresql://arag:s3cret@db:5432/arag") == "postgresql://arag:***@db:5432/arag"
    assert redacted("postgresql://arag@db/arag") == "postgresql://arag@db/arag"


def test_unreachable_postgres_fails_fast_saying_where_without_the_password() -> None:
    url = f"postgresql://arag:s3cret@127.0.0.1:{_closed_port()}/arag"
    started = time.monotonic()
    with pytest.raises(ThreadStoreUnavailableError) as caught:
        open_thread_store(_settings(url, threads_timeout=1.0))
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "cannot reach the thread store at postgresql://arag:***@127.0.0.1" in message
    assert "s3cret" not in message


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_setup_twice_and_sqlite_stays_the_default(threads_url: str, tmp_path: Path) -> None:
    for _ in range(2):  # migrations run once; a second process starting finds them done
        store = open_thread_store(_settings(threads_url))
        assert store.kind == "postgres"
        store.check()
        store.close()
    default = open_thread_store(Settings())
    assert default.kind == "sqlite"
    assert default.where.endswith("threads.sqlite")
    default.close()


# -- agents ----------------------------------------------------------------------------------


def test_a_rag_thread_continues_through_another_process_pool(threads_url: str, retriever: Retriever) -> None:
    """Two thread stores on one database are two processes: each continues the other's thread."""
    first, second = open_thread_store(_settings(threads_url)), open_thread_store(_settings(threads_url))
    a = RagAgent(retriever, checkpointer=first.checkpointer)
    b = RagAgent(retriever, checkpointer=second.checkpointer)
    a.invoke(EIFFEL, thread_id="shared")
    follow_up = b.invoke("When was it completed?", thread_id="shared")
    assert follow_up.standalone_question != "When was it completed?"  # resolved against a's turn
    assert "1889" in follow_up.answer
    a.invoke("What does the waggle dance tell other honeybees?", thread_id="shared")
    assert _questions(b.thread_messages("shared")) == [
        EIFFEL,
        "When was it completed?",
        "What does the waggle dance tell other honeybees?",
    ]
    assert b.thread_messages("unknown") == []
    first.close()
    second.close()


def test_one_thread_id_is_a_thread_per_agent_in_postgres(threads_url: str, retriever: Retriever) -> None:
    store = open_thread_store(_settings(threads_url))
    seen: list[list[str]] = []

    def reply(messages: list[BaseMessage]) -> str:
        seen.append(_questions(messages))
        return "ok"

    react = ReactAgent(
        function_model(reply), retriever=retriever, checkpointer=store.checkpointer, read_documents=False
    )
    agents = ServerAgents(rag=RagAgent(retriever, checkpointer=store.checkpointer), react=react, thread_store=store)
    with running(create_app(Settings(), agents=agents)) as url:
        _ask(url, "rag", EIFFEL, "t1")
        _ask(url, "react", "First react question?", "t1")
        _ask(url, "react", "Second react question?", "t1")
        rag_thread = httpx.get(url + "/v1/threads/t1", timeout=10).json()["messages"]
        health = httpx.get(url + "/health", timeout=10).json()
    store.close()
    assert seen[-1] == ["First react question?", "Second react question?"]
    assert [m["content"] for m in rag_thread if m["role"] == "user"] == [EIFFEL]
    assert health["threads"] == "postgres"
    with psycopg.connect(threads_url) as db:
        rows = set(db.execute("SELECT DISTINCT thread_id, checkpoint_ns FROM checkpoints").fetchall())
    assert rows == {("t1", ""), ("t1", "react")}


def _ask(url: str, model: str, question: str, thread: str, *, stream: bool = False) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": question}], "thread_id": thread}
    if stream:
        body["stream"] = True
    response = httpx.post(url + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response


# -- a database restart ----------------------------------------------------------------------


def test_a_postgres_restart_is_a_503_then_the_server_recovers_by_itself(retriever: Retriever) -> None:
    with PostgresServer() as pg:
        url = pg.create_database()
        store = open_thread_store(_settings(url, threads_timeout=1.0))
        agents = ServerAgents(rag=RagAgent(retriever, checkpointer=store.checkpointer), thread_store=store)
        with running(create_app(Settings(), agents=agents)) as base:
            _ask(base, "rag", EIFFEL, "r1")
            pg.stop()
            for stream in (False, True):  # refused before the run starts: a real 503 status
                started = time.monotonic()
                down = _post(base, "And when?", "r1", stream=stream)
                assert time.monotonic() - started < 10  # the pool's timeout, not a hang
                assert down.status_code == 503, down.text
                assert down.json()["error"]["code"] == "thread_store_unavailable"
                assert down.headers["retry-after"] == "5"
                assert "127.0.0.1" in down.json()["error"]["message"]
            assert httpx.get(base + "/v1/threads/r1", timeout=30).status_code == 503
            # A conversation sent whole needs no thread store: it is answered all along.
            whole = {"model": "rag", "messages": [{"role": "user", "content": EIFFEL}]}
            assert httpx.post(base + "/v1/chat/completions", json=whole, timeout=30).status_code == 200
            pg.start()
            _wait_until(lambda: _post(base, "When was it completed?", "r1").status_code == 200, 20)

            # The database going away mid-run (after the check): the stream's error object is the 503.
            original = store.checkpointer.put

            def stop_then_put(*args: Any, **kwargs: Any) -> Any:
                if pg.running:
                    pg.stop()
                return original(*args, **kwargs)

            store.checkpointer.put = stop_then_put  # type: ignore[method-assign]
            midway = _post(base, "What does the waggle dance tell other honeybees?", "r1", stream=True)
            store.checkpointer.put = original  # type: ignore[method-assign]
            assert midway.status_code == 200  # the stream had begun
            assert '"code": "thread_store_unavailable"' in midway.text.replace('":"', '": "')
            assert midway.text.rstrip().endswith("data: [DONE]")
            pg.start()
            _wait_until(lambda: _post(base, "Where is the Golden Gate Bridge?", "r1").status_code == 200, 20)
            messages = httpx.get(base + "/v1/threads/r1", timeout=30).json()["messages"]
        store.close()
    users = [m["content"] for m in messages if m["role"] == "user"]
    assert users[:2] == [EIFFEL, "When was it completed?"]  # nothing committed was lost
    assert users[-1] == "Where is the Golden Gate Bridge?"


def _post(base: str, question: str, thread: str, *, stream: bool = False) -> httpx.Response:
    body = {"model": "rag", "messages": [{"role": "user", "content": question}], "thread_id": thread, "stream": stream}
    return httpx.post(base + "/v1/chat/completions", json=body, timeout=30)


def test_a_broken_thread_table_is_a_500_not_a_503(threads_url: str, retriever: Retriever) -> None:
    """Only a store that does not answer is a 503; a store that answers with an error is the server's fault."""
    store = open_thread_store(_settings(threads_url))
    agents = ServerAgents(rag=RagAgent(retriever, checkpointer=store.checkpointer), thread_store=store)
    with running(create_app(Settings(), agents=agents)) as base:
        _ask(base, "rag", EIFFEL, "m1")
        with psycopg.connect(threads_url, autocommit=True) as admin:
            admin.execute("ALTER TABLE checkpoint_writes RENAME TO checkpoint_writes_gone")
            try:
                broken = _post(base, "And when?", "m1")
            finally:
                admin.execute("ALTER TABLE checkpoint_writes_gone RENAME TO checkpoint_writes")
        assert broken.status_code == 500
        assert broken.json()["error"]["code"] == "run_failed"
        _ask(base, "rag", "When was it completed?", "m1")
    store.close()


# -- server processes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled corpus ingested once with the real model into an embedded store."""
    data = tmp_path_factory.mktemp("served")
    ingest(data)
    return data


def _copy_of(corpus: Path, where: Path) -> Path:
    """A second process's own copy of the embedded store (one process opens a store at a time)."""
    shutil.copytree(corpus, where, ignore=shutil.ignore_patterns("threads.sqlite*"))
    return where


def _thread(url: str, thread: str) -> list[dict[str, str]]:
    response = httpx.get(f"{url}/v1/threads/{thread}", timeout=30)
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


def test_two_serve_processes_on_one_postgres_keep_a_conversation(
    threads_url: str, served_corpus: Path, tmp_path: Path
) -> None:
    """Five turns alternating between two `arag serve` processes: each turn sees every earlier one."""
    env = {"ARAG_THREADS_URL": threads_url, "ARAG_EMBEDDING_CACHE": "false"}
    questions = [
        "When did Apollo 11 land on the Moon?",
        "Who were its three astronauts?",
        "What does the waggle dance tell other bees?",
        "Who deciphered the Egyptian hieroglyphs?",
        "In what year did he announce it?",
    ]
    first = ServerProcess(served_corpus, env)
    second = ServerProcess(_copy_of(served_corpus, tmp_path / "second"), env)
    thread = uuid.uuid4().hex
    with first.running() as a, second.running() as b:
        assert httpx.get(a + "/health").json()["threads"] == "postgres"
        for turn, question in enumerate(questions):
            url = (a, b)[turn % 2]
            answer = _ask(url, "rag", question, thread, stream=turn == 2).text
            assert answer
            seen = _thread((b, a)[turn % 2], thread)  # the other process sees the turn at once
            assert [m["content"] for m in seen if m["role"] == "user"] == questions[: turn + 1]
            assert [m["role"] for m in seen] == ["user", "assistant"] * (turn + 1)
        last = _thread(a, thread)
    assert "1969" in last[1]["content"]
    assert "Champollion" in last[7]["content"]
    assert "1822" in last[9]["content"]  # "he" resolved against the turn served by the other process


def test_arag_ask_and_chat_keep_their_threads_in_postgres(
    threads_url: str, served_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from agents.cli import main

    monkeypatch.setenv("ARAG_DATA_DIR", str(_copy_of(served_corpus, tmp_path / "cli")))
    monkeypatch.setenv("ARAG_THREADS_URL", threads_url)
    assert main(["ask", "Who deciphered the Egyptian hieroglyphs?", "--thread", "c1", "-q"]) == 0
    lines = iter(["In what year did he announce it?", "/exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["chat", "--thread", "c1"]) == 0
    assert "1822" in capsys.readouterr().out  # "he" resolved against the turn `arag ask` stored
    with psycopg.connect(threads_url) as db:
        threads = {row[0] for row in db.execute("SELECT thread_id FROM checkpoints").fetchall()}
    assert threads == {"c1"}
    assert not (tmp_path / "cli" / "threads.sqlite").exists()  # nothing went to the SQLite default


def test_more_than_one_worker_over_the_embedded_store_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agents.cli import main
    from agents.serve._workers import check_workers

    assert main(["serve", "--workers", "2"]) == 1
    assert "--workers 2 needs a Qdrant server" in capsys.readouterr().err
    check_workers(Settings(store={"qdrant_url": "http://qdrant:6333"}), 4)  # a server: allowed
    check_workers(Settings(), 1)
    with pytest.raises(ValueError, match="local store"):
        check_workers(Settings(store={"backend": "local"}), 2)
    with pytest.raises(ValueError, match="at least 1"):
        check_workers(Settings(), 0)


def test_workers_with_an_unreachable_thread_store_stop_at_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked once before any worker starts: one error line, no crash loop of workers."""
    from agents.cli import main

    monkeypatch.setenv("ARAG_QDRANT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("ARAG_THREADS_URL", f"postgresql://arag:s3cret@127.0.0.1:{_closed_port()}/arag")
    monkeypatch.setenv("ARAG_THREADS_TIMEOUT", "1")
    started = time.monotonic()
    assert main(["serve", "--workers", "2", "--port", "0"]) == 1
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err
    assert "cannot reach the thread store at postgresql://arag:***@127.0.0.1" in err
    assert "s3cret" not in err


def test_workers_share_postgres_threads_and_a_killed_worker_loses_no_committed_step(
    threads_url: str, tmp_path: Path
) -> None:
    """`arag serve --workers 2` with threads in Postgres and the real ChatOpenAI client on a
    loopback model. Both workers are killed with SIGKILL while a streamed turn waits on the model:
    the client gets an error at once, the supervisor starts new workers, and the thread continues
    from its last committed step on them."""
    with OpenAIStub() as model:
        env = {
            "ARAG_THREADS_URL": threads_url,
            "ARAG_CHAT_MODEL": "stub",
            "ARAG_OPENAI_BASE_URL": model.base_url,
            "ARAG_OPENAI_API_KEY": "k",
            # A Qdrant server no test can have: nothing here searches (the model answers directly),
            # and the workers must not need the store to start.
            "ARAG_QDRANT_URL": f"http://127.0.0.1:{_closed_port()}",
            "ARAG_SERVER_DEADLINE": "60",
        }
        tmp_path.joinpath("data").mkdir()
        workers = ServerProcess(tmp_path / "data", env, args=["--workers", "2"])
        thread = uuid.uuid4().hex
        with workers.running() as url:
            assert workers.process is not None
            children = _children(workers.process.pid, 2, log=workers.log)
            model.reply("Turn one answer.")
            assert "Turn one answer." in _ask(url, "react", "Turn one?", thread).text
            model.reply(ChatReply("never sent", delay=30))
            asked = len(model.state.requests)
            outcome: dict[str, Any] = {}

            def turn_two() -> None:
                body = {"model": "react", "stream": True, "thread_id": thread}
                body["messages"] = [{"role": "user", "content": "Turn two?"}]
                try:
                    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as response:
                        outcome["lines"] = list(response.iter_lines())
                except httpx.HTTPError as exc:
                    outcome["error"] = exc

            client = threading.Thread(target=turn_two)
            client.start()
            _wait_until(lambda: len(model.state.requests) > asked, 20)  # the run waits on the model now
            # ... and turn two's question is committed: checkpoints are written beside the next step
            # (LangGraph's async durability), so the model may be asked before the write lands.
            _wait_until(lambda: _committed(threads_url, thread, "Turn two?"), 20)
            killed = time.monotonic()
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            client.join(30)
            assert not client.is_alive()  # the client is not left hanging
            assert time.monotonic() - killed < 10
            assert isinstance(outcome.get("error"), httpx.HTTPError), outcome
            replaced = _children(workers.process.pid, 2, exclude=set(children), log=workers.log)
            assert not set(replaced) & set(children)
            _wait_until(lambda: _healthy(url), 60)
            model.reply("Turn three answer.")
            assert "Turn three answer." in _ask(url, "react", "Turn three?", thread).text
    prompt = model.state.requests[-1]["body"]["messages"]
    users = [m["content"] for m in prompt if m["role"] == "user"]
    # Turn one whole, turn two's question (committed before the kill), turn three.
    assert users == ["Turn one?", "Turn two?", "Turn three?"]
    assert any(m["role"] == "assistant" and m.get("content") == "Turn one answer." for m in prompt)


def _committed(threads_url: str, thread: str, text: str) -> bool:
    """Whether a checkpoint of ``thread`` in Postgres holds ``text`` (in its serialised channels)."""
    with psycopg.connect(threads_url, autocommit=True) as connection:
        found = connection.execute(
            "SELECT 1 FROM checkpoint_blobs WHERE thread_id LIKE %s AND position(%s::bytea in blob) > 0 LIMIT 1",
            (f"%{thread}%", text.encode()),
        ).fetchone()
    return found is not None


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_until(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            msg = f"not within {seconds} s"
            raise AssertionError(msg)
        time.sleep(0.05)


def _children(
    parent: int, count: int, *, exclude: set[int] | None = None, seconds: float = 90, log: Iterable[str] = ()
) -> list[int]:
    """The worker processes of the supervisor ``parent`` once ``count`` of them are serving; the
    failure quotes the end of the server's ``log`` (a worker that could not start says why there)."""
    exclude = exclude or set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in exclude:
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
            if int(fields[1]) == parent and b"spawn_main" in cmdline:
                found.append(int(entry.name))
        if len(found) >= count:
            return found
        time.sleep(0.2)
    tail = "\n".join(list(log)[-30:])
    msg = f"the supervisor {parent} did not have {count} workers within {seconds} s; its log ends:\n{tail}"
    raise AssertionError(msg)
