"""MCP out (``arag mcp`` over stdio and streamable HTTP, with the official client) and in (tools
of MCP servers for the ReAct agent: sessions kept, failures reported, configs checked)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import ToolException
from langchain_core.utils.function_calling import convert_to_openai_tool
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

import agents.build as build
from agents.build import build_agents
from agents.cli import main
from agents.mcp_tools import McpConfigError, McpTools, open_mcp_tools, parse_mcp_config
from agents.react_agent import ReactAgent
from agents.settings import Settings
from agents.testing import FakeEmbeddings, scripted
from tests.serving import ingest_corpus
from tools.store import EdgeStore

CLI = [sys.executable, "-m", "agents.cli"]
TOOLS = {"search", "ask", "sources", "read_document"}
EIFFEL = "The Eiffel Tower is 330 metres tall and was completed in 1889."

CALC_SERVER = textwrap.dedent(
    '''
    import os
    from mcp.server.fastmcp import FastMCP

    server = FastMCP("calc")

    @server.tool()
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    @server.tool()
    def pid() -> int:
        """The server's process id."""
        return os.getpid()

    @server.tool()
    def fail(message: str) -> str:
        """Always fails with the message."""
        raise ValueError(message)

    server.run()
    '''
)


def _env(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARAG_")}
    return {**env, "ARAG_DATA_DIR": str(data), **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with the source ``kb`` ingested by ``arag ingest`` (the real local model)."""
    root = tmp_path_factory.mktemp("mcp")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "eiffel.txt").write_text(EIFFEL + "\n")
    (corpus / "bees.md").write_text("# Bees\n\nThe waggle dance tells other bees where the flowers are.\n")
    data = root / "data"
    ingest = [*CLI, "ingest", str(corpus), "--source", "kb", "-d", "Landmarks and bees", "-q"]
    subprocess.run(ingest, env=_env(data), check=True, capture_output=True, timeout=120)
    return data


@pytest.fixture
def calc_script(tmp_path: Path) -> Path:
    path = tmp_path / "calc_server.py"
    path.write_text(CALC_SERVER)
    return path


async def _check_the_tools(session: ClientSession) -> None:
    """What a client sees of every tool: the tool list, and each tool's real content."""
    await session.initialize()
    listed = (await session.list_tools()).tools
    assert {t.name for t in listed} == TOOLS
    assert all(t.description and t.inputSchema["type"] == "object" for t in listed)

    found = await session.call_tool("search", {"query": "How tall is the Eiffel Tower?", "k": 2})
    assert not found.isError
    assert found.structuredContent is not None
    best = found.structuredContent["passages"][0]
    assert set(best) == {"id", "source", "doc_id", "title", "text", "score"}
    assert best["source"] == "kb"
    assert best["doc_id"].endswith("eiffel.txt")
    assert "330 metres" in best["text"]
    assert "330 metres" in found.content[0].text  # type: ignore[union-attr]
    sparse = await session.call_tool("search", {"query": "waggle dance", "k": 1, "mode": "sparse"})
    assert sparse.structuredContent is not None
    assert sparse.structuredContent["passages"][0]["doc_id"].endswith("bees.md")

    steps: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        steps.append(message or "")

    asked = await session.call_tool("ask", {"question": "How tall is the Eiffel Tower?"}, progress_callback=progress)
    assert not asked.isError
    answer = asked.structuredContent
    assert answer is not None
    assert answer["exit_reason"] == "answered"
    assert "330 metres" in answer["answer"]
    assert "[1]" in answer["answer"]
    assert answer["citations"][0]["doc_id"].endswith("eiffel.txt")
    assert any(s.startswith("retrieve") for s in steps), steps  # one notification per step

    listed_sources = await session.call_tool("sources", {})
    assert listed_sources.structuredContent == {
        "sources": [{"name": "kb", "description": "Landmarks and bees", "chunks": 2}]
    }

    read = await session.call_tool("read_document", {"source": "kb", "doc_id": best["doc_id"]})
    assert read.structuredContent is not None
    assert read.structuredContent["text"].strip() == EIFFEL
    assert read.structuredContent["next_offset"] is None
    missing = await session.call_tool("read_document", {"source": "nope", "doc_id": "x"})
    assert missing.isError
    assert "'nope'" in missing.content[0].text  # type: ignore[union-attr]
    wrong = await session.call_tool("search", {"query": "x", "k": 500})
    assert wrong.isError


@pytest.mark.model
def test_the_official_client_uses_arag_mcp_over_stdio(served: Path, tmp_path: Path) -> None:
    params = StdioServerParameters(command=CLI[0], args=[*CLI[1:], "mcp"], env=_env(served))
    log = tmp_path / "server.log"

    async def use() -> None:
        with log.open("w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await _check_the_tools(session)

    asyncio.run(use())
    assert "arag MCP server on stdio" in log.read_text()  # logs go to stderr


@pytest.mark.model
def test_stdio_stdout_carries_protocol_messages_only(served: Path) -> None:
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "sources", "arguments": {}}},
    ]  # fmt: skip
    # stdin stays open until the last reply is in: at end of input the server stops, and a call
    # still running then would be cancelled.
    process = subprocess.Popen(
        [*CLI, "mcp"],
        env=_env(served),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write("".join(json.dumps(r) + "\n" for r in requests))
    process.stdin.flush()
    replies: list[dict[str, Any]] = []
    try:
        while len(replies) < 2:
            line = process.stdout.readline()
            assert line, "the server's stdout ended before both replies"
            replies.append(json.loads(line))  # every line is a message
    finally:
        process.stdin.close()
        process.wait(timeout=60)
    stdout_rest, stderr = process.stdout.read(), process.stderr.read()  # type: ignore[union-attr]
    assert stdout_rest == ""
    assert [r["id"] for r in replies] == [1, 2]
    assert replies[1]["result"]["structuredContent"]["sources"][0]["name"] == "kb"
    assert "arag MCP server on stdio" in stderr


def test_anything_else_written_to_stdout_lands_on_stderr() -> None:
    code = textwrap.dedent(
        """
        import os
        from agents.mcp_server import _protocol_stdout
        with _protocol_stdout() as protocol:
            print("a stray print", flush=True)
            os.write(1, b"a C library\\n")
            protocol.write(b'{"jsonrpc": "2.0"}\\n')
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout == '{"jsonrpc": "2.0"}\n'
    assert "a stray print" in done.stderr
    assert "a C library" in done.stderr


@pytest.fixture
def http_server(served: Path, tmp_path: Path) -> Iterator[str]:
    """``arag mcp --http`` with the key ``k`` on a free loopback port; yields the endpoint's URL."""
    port = _free_port()
    log = (tmp_path / "http.log").open("w")
    process = subprocess.Popen(
        [*CLI, "mcp", "--http", "--port", str(port)], env=_env(served, ARAG_API_KEY="k"), stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, (tmp_path / "http.log").read_text()
                assert time.monotonic() < deadline, "arag mcp --http did not come up in 60 s"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.mark.model
def test_the_official_client_uses_arag_mcp_over_http_with_the_key(http_server: str) -> None:
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "k"}):
        refused = httpx.post(http_server, json=hello, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert refused.headers["www-authenticate"] == "Bearer"

    async def use() -> None:
        async with (
            httpx.AsyncClient(headers={"Authorization": "Bearer k"}) as http,
            streamable_http_client(http_server, http_client=http) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await _check_the_tools(session)

    asyncio.run(use())


def test_http_refuses_another_host_without_a_key_and_stdio_takes_no_http_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["mcp", "--http", "--host", "0.0.0.0"]) == 1
    assert "refusing to serve '0.0.0.0' without an API key" in capsys.readouterr().err
    assert main(["mcp", "--port", "9"]) == 2
    assert "--port apply only with --http" in capsys.readouterr().err


# -- MCP in: the ReAct agent with tools from MCP servers ------------------------------------------


def test_a_react_agent_uses_a_tool_of_a_stdio_mcp_server(calc_script: Path) -> None:
    config = {"mcpServers": {"calc": {"command": sys.executable, "args": [str(calc_script)]}}}
    with open_mcp_tools(config) as mcp:
        assert mcp.failures == []
        tools = {t.name: t for t in mcp.tools}
        assert set(tools) == {"multiply", "pid", "fail"}
        seen = convert_to_openai_tool(tools["multiply"])["function"]  # what the model is sent
        assert seen["description"] == "Multiply two integers."
        assert seen["parameters"]["properties"]["a"]["type"] == "integer"
        assert seen["parameters"]["required"] == ["a", "b"]

        call = {"name": "multiply", "args": {"a": 6, "b": 7}, "id": "c1", "type": "tool_call"}
        model = scripted(AIMessage("", tool_calls=[call]), "6 times 7 is 42.")
        result = ReactAgent(model, tools=mcp.tools).invoke("What is 6 times 7?")
        assert result.exit_reason == "answered"
        assert result.answer == "6 times 7 is 42."
        assert result.tool_calls[0]["status"] == "success"
        ran = [m for m in result.messages if isinstance(m, ToolMessage)]
        assert [m.content for m in ran] == ["42"]
        assert model.remaining == 0

        # One child for the whole session, whichever thread calls.
        pids: list[Any] = []
        callers = [threading.Thread(target=lambda: pids.append(tools["pid"].invoke({}))) for _ in range(3)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        assert len(set(pids)) == 1
        child = int(pids[0])
        assert child != os.getpid()

        with pytest.raises(ToolException, match="boom"):  # the graph turns it into an error ToolMessage
            tools["fail"].invoke({"message": "boom"})
    with pytest.raises(ProcessLookupError):  # closed: the child is gone
        os.kill(child, 0)
    with pytest.raises(RuntimeError, match="closed"):
        tools["multiply"].invoke({"a": 1, "b": 2})


def test_failing_servers_are_reported_and_the_others_tools_load(
    calc_script: Path, caplog: pytest.LogCaptureFixture
) -> None:
    quiet_port = _free_port()
    config = {
        "mcpServers": {
            "broken": {"command": "/nonexistent/mcp-server"},
            "crashes": {"command": sys.executable, "args": ["-c", "import sys; sys.exit(3)"]},
            "unreachable": {"url": f"http://127.0.0.1:{quiet_port}/mcp"},
            "silent": {"command": sys.executable, "args": ["-c", "import time; time.sleep(30)"]},
            "calc": {"command": sys.executable, "args": [str(calc_script)]},
            "calc2": {"command": sys.executable, "args": [str(calc_script)], "transport": "stdio"},
            "off": {"command": "/nonexistent/too", "disabled": True},
        }
    }
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="arag.mcp"), open_mcp_tools(config, startup_timeout=3) as mcp:
        assert time.monotonic() - started < 10  # in parallel, each within the start-up timeout
        reasons = dict(mcp.failures)
        assert set(reasons) == {"broken", "crashes", "unreachable", "silent"}
        assert reasons["broken"] == "cannot start '/nonexistent/mcp-server': No such file or directory"
        assert "ended the session during start-up" in reasons["crashes"]
        assert f"cannot reach http://127.0.0.1:{quiet_port}/mcp" in reasons["unreachable"]
        assert reasons["silent"] == "no tool list within 3 s (startup timeout)"
        # the second server's tools of the same names are prefixed with its name
        assert [t.name for t in mcp.tools] == ["multiply", "pid", "fail", "calc2_multiply", "calc2_pid", "calc2_fail"]
        assert mcp.tools[3].invoke({"a": 2, "b": 3}) == "6"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'broken' is unavailable" in w and "cannot start" in w for w in warned)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, calc_script: Path) -> Settings:
    """An embedded store with the test corpus, a fake embedder, and an MCP config with a good and
    a broken server."""
    embeddings = FakeEmbeddings()
    monkeypatch.setattr(build, "build_embeddings", lambda settings: embeddings)
    config = tmp_path / "mcp.json"
    servers = {"calc": {"command": sys.executable, "args": [str(calc_script)]}, "broken": {"command": "/nope/x"}}
    config.write_text(json.dumps({"mcpServers": servers}))
    settings = Settings(store={"data_dir": tmp_path / "data"}, tools={"mcp_config": config})
    with EdgeStore(settings.store.location) as store:
        ingest_corpus(store, embeddings)
    return settings


def test_build_agents_gives_the_react_agent_the_mcp_tools_and_says_which_server_failed(
    settings: Settings,
) -> None:
    call = {"name": "multiply", "args": {"a": 6, "b": 7}, "id": "c1", "type": "tool_call"}
    model = scripted(AIMessage("", tool_calls=[call]), "It is 42.")
    with build_agents(settings, chat_model=model, threads=False) as agents:
        assert agents.react is not None
        names = {t.name for t in agents.react.tools}
        assert {"multiply", "pid", "fail", "search_landmarks", "search_bees", "read_document"} <= names
        assert "cannot start '/nope/x'" in agents.unavailable["mcp:broken"]
        (mcp,) = [r for r in agents.owned if isinstance(r, McpTools)]
        result = agents.react.invoke("What is 6 times 7?")
        assert result.exit_reason == "answered"
        assert [m.content for m in result.messages if isinstance(m, ToolMessage)] == ["42"]
    with pytest.raises(RuntimeError, match="closed"):  # Agents.close() closed the MCP sessions
        mcp.call(mcp.tools[0], {"a": 1, "b": 1})  # type: ignore[arg-type]


def test_without_a_chat_model_no_mcp_server_starts(settings: Settings) -> None:
    with build_agents(settings, threads=False) as agents:
        assert agents.react is None
        assert not [r for r in agents.owned if isinstance(r, McpTools)]


# -- bad configs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        ('["a list"]', "must be a JSON object"),
        ('{"servers_": {}}', "has no \"mcpServers\" object (found 'servers_')"),
        ('{"mcpServers": {"x": {"args": []}}}', "server 'x' has neither 'command' (a stdio server to start) nor 'url'"),
        ('{"mcpServers": {"x": {"command": "a", "args": "b"}}}', "server 'x': 'args' must be a list of strings"),
        ('{"mcpServers": {"x": {"url": "ftp://h"}}}', "server 'x': an HTTP server needs 'url', an http://"),
        ('{"mcpServers": {"x": {"url": "http://h", "transport": "ws"}}}', "server 'x': transport 'ws' is not one of"),
        ('{"mcpServers": {"x": 3}}', "server 'x' must be an object"),
    ],
)
def test_a_malformed_config_is_an_error_naming_the_file_and_the_server(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(text)
    with pytest.raises(McpConfigError) as caught:
        parse_mcp_config(path)
    assert str(caught.value).startswith(f"MCP config {str(path)!r}")
    assert says in str(caught.value)


def test_config_shapes_and_a_bad_config_fails_the_build(settings: Settings, tmp_path: Path) -> None:
    parsed = parse_mcp_config(
        {
            "servers": {  # VS Code's name for the object
                "local": {"command": "srv", "env": {"TOKEN": "${HOME}"}, "cwd": "/tmp"},
                "remote": {"url": "https://example.org/mcp", "headers": {"Authorization": "Bearer t"}},
                "typed": {"type": "http", "url": "http://127.0.0.1:1/mcp"},
            }
        }
    )
    assert parsed == {
        "local": {"transport": "stdio", "command": "srv", "args": [], "env": {"TOKEN": "${HOME}"}, "cwd": "/tmp"},
        "remote": {"transport": "streamable_http", "url": "https://example.org/mcp",
                   "headers": {"Authorization": "Bearer t"}},
        "typed": {"transport": "streamable_http", "url": "http://127.0.0.1:1/mcp"},
    }  # fmt: skip
    with pytest.raises(McpConfigError, match="cannot be read"):
        parse_mcp_config(tmp_path / "missing.json")
    assert settings.tools.mcp_config is not None
    settings.tools.mcp_config.write_text('{"mcpServers": {"calc": {}}}')
    with pytest.raises(McpConfigError, match="server 'calc' has neither"):
        build_agents(settings, chat_model=scripted("unused"), threads=False)
    with EdgeStore(settings.store.location) as store:  # the failed build let go of the store
        assert store.list_sources()
