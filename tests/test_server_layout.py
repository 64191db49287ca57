"""The serving stack's layout: ``agents.serve`` and its public names, the older import paths that
re-export them, ``langgraph.json``, and the one rule both servers read ``rlm``'s long text by."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

import agents.chat
import agents.langgraph_app
import agents.serve
import agents.server
from agents.serve import chat, langgraph_app
from agents.serve.chat import NO_LONG_TEXT, long_text

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("module", ["agents.serve", "agents.server", "agents.chat", "agents.langgraph_app"])
def test_public_names_import(module: str) -> None:
    loaded = importlib.import_module(module)
    for name in loaded.__all__:
        assert getattr(loaded, name) is not None, f"{module}.{name}"


def test_the_old_import_paths_are_the_same_objects() -> None:
    for name in agents.server.__all__:
        assert getattr(agents.server, name) is getattr(agents.serve, name), name
    for name in agents.chat.__all__:
        assert getattr(agents.chat, name) is getattr(chat, name), name
    assert agents.langgraph_app.rag is langgraph_app.rag
    assert agents.langgraph_app.rlm is langgraph_app.rlm


def test_langgraph_json_names_graphs_that_import() -> None:
    graphs = json.loads((REPO / "langgraph.json").read_text())["graphs"]
    for spec in graphs.values():
        module, _, attribute = spec.partition(":")
        assert getattr(importlib.import_module(module), attribute) is not None, spec


def test_the_page_ships_with_the_package() -> None:
    from agents.serve.app import WEB_PAGE

    assert WEB_PAGE.is_file()
    assert "serve/web/*.html" in (REPO / "pyproject.toml").read_text()


# -- the long text of an rlm question -------------------------------------------------------------


def test_the_long_text_is_the_earlier_user_messages() -> None:
    history = [
        SystemMessage("You are terse."),
        HumanMessage("Part one."),
        AIMessage("Noted."),
        HumanMessage("   "),
        HumanMessage("Part two."),
    ]
    assert long_text("What is in it?", history) == ("Part one.\n\nPart two.", "What is in it?")


def test_a_single_message_is_split_at_its_last_blank_line() -> None:
    text, question = long_text("Para one.\n\nPara two.\n\n  What is in it?  ", [])
    assert (text, question) == ("Para one.\n\nPara two.", "What is in it?")


@pytest.mark.parametrize("question", ["What is in it?", "\n\nWhat is in it?", "Text only.\n\n   "])
def test_nothing_to_read_says_how_to_send_the_text(question: str) -> None:
    with pytest.raises(ValueError, match="nothing to read") as raised:
        long_text(question, [SystemMessage("an instruction is not the text"), AIMessage("nor an answer")])
    assert str(raised.value) == NO_LONG_TEXT
    assert "model 'rlm' answers over a long text" in NO_LONG_TEXT


def test_the_langgraph_rlm_graph_reads_a_single_message_as_arag_serve_does() -> None:
    passage = "Filler about nothing in particular. " * 150 + "The special magic number for Paris is 4721."
    message = {"role": "user", "content": passage + "\n\nWhat is the magic number for Paris?"}
    reply = langgraph_app.rlm.invoke({"messages": [message]})["messages"][-1]
    assert "4721" in reply.text
