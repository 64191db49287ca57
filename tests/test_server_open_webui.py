"""``arag serve`` for Open WebUI, on the server's side: its background requests recognised from
the real 0.12.4 templates and answered without retrieval, its RAG template answered from the
attached sources, sources as its source events, answers that open as prose, the rest of the
completion's shape (steps, usage), ``rlm``'s pasted text, and the log line per completion."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agents.events import AgentResult, Citation
from agents.serve import create_app
from agents.serve.chat import background_task_reply, plain_opening
from agents.serve.open_webui import (
    ATTACHED_SOURCE,
    AttachedSource,
    background_request,
    from_open_webui,
    merge_attached,
    rag_prompt,
    source_event,
    title_for,
)
from agents.serve.runs import _final
from agents.settings import Settings
from agents.testing import FakeEmbeddings
from tests import open_webui_prompts as owui
from tests.serving import offline_agents, running
from tools.store import QdrantStore

EIFFEL = "How tall is the Eiffel Tower?"
CHAT = (("user", EIFFEL), ("assistant", "The Eiffel Tower in Paris is 330 metres tall [1]."))
OPEN_WEBUI = {"user-agent": "Python/3.11 aiohttp/3.12.15"}
"""What Open WebUI sends besides the key: aiohttp's default User-Agent."""

KETTLE = (
    "The Kettle Lighthouse stands on a granite reef off the north cape. "
    "Its last keeper was Ada Byrne, who left in 1931 when the light was automated."
)


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _rag_message(query: str, *sources: tuple[str, str]) -> str:
    """The last user message as Open WebUI sends it with a file attached: its RAG template
    around the sources, a newline, then the user's query (``add_or_update_user_message``)."""
    context = "".join(
        f'<source id="{i}" name="{name}" resource-type="file">{text}</source>\n'
        for i, (name, text) in enumerate(sources, 1)
    )
    return owui.render(owui.RAG, CONTEXT=context.strip()) + "\n" + query


# -- background requests, from the real templates ----------------------------------------------------

BACKGROUND = [
    ("title", owui.render(owui.TITLE_GENERATION, *CHAT), {"title": "Eiffel Tower"}),
    ("tags", owui.render(owui.TAGS_GENERATION, *CHAT), {"tags": ["General"]}),
    ("follow_ups", owui.render(owui.FOLLOW_UP_GENERATION, *CHAT), {"follow_ups": []}),
    (
        "queries",
        owui.render(owui.QUERY_GENERATION, *CHAT, ("user", "When was it built?")),
        {"queries": ["When was it built?"]},
    ),
    ("image_prompt", owui.render(owui.IMAGE_PROMPT_GENERATION, *CHAT), {"prompt": EIFFEL}),
    ("autocomplete", owui.render(owui.AUTOCOMPLETE_GENERATION, *CHAT, prompt="How tall", TYPE="General"), {"text": ""}),
]


@pytest.mark.parametrize(("kind", "prompt", "expected"), BACKGROUND, ids=[b[0] for b in BACKGROUND])
def test_each_json_task_prompt_is_recognised_and_answered_in_its_shape(
    kind: str, prompt: str, expected: dict[str, Any]
) -> None:
    request = background_request(_user(prompt))
    assert request is not None
    assert request.kind == kind
    assert json.loads(request.reply()) == expected
    assert background_task_reply(prompt) == request.reply()


def test_emoji_merge_and_tool_choice_prompts_are_recognised() -> None:
    emoji = background_request(_user(owui.render(owui.EMOJI_GENERATION, prompt="That's wonderful news!")))
    assert emoji is not None
    assert emoji.kind == "emoji"
    assert len(emoji.reply()) == 1
    answers = '"""The Eiffel Tower is 330 metres tall [1]."""\n\n"""It is 330 m tall [1]."""'
    merge = background_request(_user(owui.render(owui.MOA_GENERATION, prompt=EIFFEL, responses=answers)))
    assert merge is not None
    assert merge.kind == "merge"
    assert merge.reply() == "The Eiffel Tower is 330 metres tall [1]."
    tools = [
        {"role": "system", "content": owui.TOOLS_FUNCTION_CALLING.replace("{{TOOLS}}", "[]")},
        {"role": "user", "content": f"Query: {EIFFEL}"},
    ]
    choice = background_request(tools)
    assert choice is not None
    assert choice.kind == "tools"
    assert json.loads(choice.reply()) == {"tool_calls": []}


@pytest.mark.parametrize(
    "messages",
    [
        _user(_rag_message(EIFFEL, ("notes.txt", KETTLE))),  # the RAG template: a question, not a chore
        _user("### Task: give this chat a title and some tags"),  # words are not structure
        _user('Summarise: <chat_history>USER: hi</chat_history> and answer { "title": "x" }'),
        # the same structure pasted in the middle of a conversation is the user's text
        [*_user(EIFFEL), {"role": "assistant", "content": "330 m"}, *_user(owui.render(owui.TITLE_GENERATION, *CHAT))],
    ],
    ids=["rag-template", "task-words", "json-after-the-chat", "in-a-conversation"],
)
def test_questions_are_not_background_requests(messages: list[dict[str, Any]]) -> None:
    assert background_request(messages) is None


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("Who was the last keeper of the Kettle Lighthouse?", "Last Keeper of the Kettle Lighthouse"),
        ("How tall is the Eiffel Tower?", "Eiffel Tower"),
        ("What does the waggle dance tell other honeybees about food?", "Waggle Dance Tell Other Honeybees"),
        ("Can you tell me about the Golden Gate Bridge", "Golden Gate Bridge"),
        ("When did Apollo 11 land on the Moon?", "Apollo 11 Land on the Moon"),
        ("???", "New Chat"),
    ],
)
def test_titles_read_as_titles(question: str, title: str) -> None:
    assert title_for(question) == title
    assert title.split()[-1].lower() not in {"of", "the", "a", "to", "in", "about"}


# -- the RAG template: the attached sources are evidence ---------------------------------------------


def test_the_rag_template_yields_the_query_and_the_attached_sources() -> None:
    parsed = rag_prompt(_rag_message("Who was the last keeper?", ("kettle.md", KETTLE), ("other.md", "Other text.")))
    assert parsed is not None
    assert parsed.query == "Who was the last keeper?"
    assert [(s.number, s.name) for s in parsed.sources] == [(1, "kettle.md"), (2, "other.md")]
    assert parsed.sources[0].text == KETTLE
    assert rag_prompt(EIFFEL) is None


def _final_item(answer: str, citations: list[Citation], exit_reason: str = "answered") -> dict[str, Any]:
    return {
        "type": "final",
        "answer": answer,
        "citations": citations,
        "exit_reason": exit_reason,
        "usage": {},
        "thread_id": "",
        "error": None,
    }


def test_attached_sources_keep_their_numbers_and_retrieved_ones_follow() -> None:
    attached = [AttachedSource(1, "kettle.md", KETTLE), AttachedSource(2, "other.md", "Bees make honey in hives.")]
    retrieved = Citation(1, "c1", "landmarks", "Eiffel Tower", "eiffel", "", "The Eiffel Tower is 330 metres tall.")
    merged = merge_attached(
        "Who was the last keeper of the Kettle Lighthouse?",
        _final_item("The Eiffel Tower is 330 metres tall [1].", [retrieved]),
        attached,
    )
    quoted, _, retrieved_text = merged["answer"].partition("\n\n")
    assert "Its last keeper was Ada Byrne" in quoted
    assert quoted.endswith("[1].")
    assert retrieved_text == "The Eiffel Tower is 330 metres tall [3]."  # after the attached numbers
    assert [(c.number, c.source) for c in merged["citations"]] == [(1, ATTACHED_SOURCE), (3, "landmarks")]


def test_attached_sources_that_do_not_answer_leave_the_abstention() -> None:
    abstained = _final_item("I found nothing in the sources about that.", [], "abstained")
    merged = merge_attached("What is the vault code?", abstained, [AttachedSource(1, "kettle.md", KETTLE)])
    assert merged == abstained


# -- what an answer shows ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        ("# The Kettle Lighthouse [1] stands on a reef.", "The Kettle Lighthouse [1] stands on a reef."),
        ("## Keeper\n\nAda Byrne [1].", "Keeper\n\nAda Byrne [1]."),
        ("> quoted [1]", "quoted [1]"),
        ("---\n</div> ) Ada Byrne [1].", "Ada Byrne [1]."),
        ("Ada Byrne kept it until 1931 [1].", "Ada Byrne kept it until 1931 [1]."),
        ("**Ada Byrne** [1].", "**Ada Byrne** [1]."),
    ],
)
def test_answers_never_open_with_a_heading_or_markup(answer: str, shown: str) -> None:
    assert plain_opening(answer) == shown
    result = AgentResult(question="q", answer=answer, exit_reason="answered", usage={})
    assert _final(result)["answer"] == shown  # at the answer boundary, for every agent


def test_a_citation_is_a_source_event_with_its_own_id_and_a_short_name() -> None:
    citation = Citation(2, "chunk-7", "docs", "A very long title of a document about lighthouses", "d", "", "Text.")
    event = source_event(citation)
    assert event["type"] == "source"
    data = event["data"]
    assert data["document"] == ["Text."]
    assert data["metadata"] == [{"source": "chunk-7", "name": data["source"]["name"]}]
    assert data["source"]["id"] == "chunk-7"
    assert len(data["source"]["name"]) <= 30
    assert data["source"]["name"].startswith("A very long title")


def test_open_webui_is_recognised_by_header_user_agent_or_its_prompts() -> None:
    question = _user(EIFFEL)
    assert from_open_webui(OPEN_WEBUI, question)
    assert from_open_webui({"X-OpenWebUI-User-Id": "u1"}, question)
    assert from_open_webui({}, _user(owui.render(owui.TITLE_GENERATION, *CHAT)))
    assert from_open_webui({}, _user(_rag_message(EIFFEL, ("a.md", KETTLE))))
    assert not from_open_webui({"user-agent": "OpenAI/Python 1.99.0"}, question)
    assert not from_open_webui({}, question)


# -- over HTTP -----------------------------------------------------------------------------------------


class CountingEmbeddings(FakeEmbeddings):
    def __init__(self) -> None:
        super().__init__()
        self.queries = 0

    def embed_query(self, text: str) -> list[float]:
        self.queries += 1
        return super().embed_query(text)


@pytest.fixture
def served() -> Iterator[tuple[str, CountingEmbeddings]]:
    embeddings = CountingEmbeddings()
    agents = offline_agents(QdrantStore(":memory:"), embeddings)
    embeddings.queries = 0
    with running(create_app(Settings(), agents=agents)) as url:
        yield url, embeddings


def _post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = httpx.post(url + "/v1/chat/completions", json=body, headers=headers or {}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _stream(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    with httpx.stream(
        "POST", url + "/v1/chat/completions", json={**body, "stream": True}, headers=headers or {}, timeout=30
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def _content(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if "choices" in c)


@pytest.mark.parametrize(("kind", "prompt", "expected"), BACKGROUND[:3], ids=[b[0] for b in BACKGROUND[:3]])
def test_background_requests_run_no_retrieval_and_report_no_usage(
    served: tuple[str, CountingEmbeddings], kind: str, prompt: str, expected: dict[str, Any], caplog: Any
) -> None:
    url, embeddings = served
    with caplog.at_level(logging.INFO, logger="arag.server"):
        reply = _post(url, {"model": "rag", "messages": _user(prompt)}, OPEN_WEBUI)
        chunks = _stream(url, {"model": "rag", "messages": _user(prompt)}, OPEN_WEBUI)
    assert json.loads(reply["choices"][0]["message"]["content"]) == expected
    assert "usage" not in reply
    assert json.loads(_content(chunks)) == expected
    assert embeddings.queries == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("completion ")]
    assert len(lines) == 2
    assert f"background={kind}" in lines[0]
    assert "model=rag" in lines[0]
    assert "stream=False" in lines[0]


def test_open_webui_gets_source_events_and_no_text_sources(served: tuple[str, CountingEmbeddings]) -> None:
    url, _ = served
    chunks = _stream(url, {"model": "rag", "messages": _user(EIFFEL)}, OPEN_WEBUI)
    events = [c["event"] for c in chunks if "event" in c]
    assert [e["type"] for e in events] == ["source"]
    (data,) = [e["data"] for e in events]
    assert "330 metres" in data["document"][0]
    assert data["metadata"][0]["source"] == data["source"]["id"]
    assert data["source"]["name"] == "Eiffel Tower"
    answer = _content(chunks)
    assert "[1]" in answer
    assert "Sources" not in answer
    assert [c["doc_id"] for c in chunks[-1]["citations"]] == ["eiffel"]  # still there for other clients


def test_other_clients_get_the_text_sources_and_the_events_too(served: tuple[str, CountingEmbeddings]) -> None:
    url, _ = served
    chunks = _stream(url, {"model": "rag", "messages": _user(EIFFEL)}, {"user-agent": "OpenAI/Python 1.99.0"})
    assert "**Sources**" in _content(chunks)
    assert sum("event" in c for c in chunks) == 1


def test_the_text_sources_for_open_webui_are_a_setting() -> None:
    agents = offline_agents(QdrantStore(":memory:"), FakeEmbeddings())
    with running(create_app(Settings(server={"open_webui_references": True}), agents=agents)) as url:
        chunks = _stream(url, {"model": "rag", "messages": _user(EIFFEL)}, OPEN_WEBUI)
    assert "**Sources**" in _content(chunks)


def test_a_question_with_a_file_attached_is_answered_from_the_file(
    served: tuple[str, CountingEmbeddings], caplog: Any
) -> None:
    url, embeddings = served
    message = _rag_message("Who was the last keeper of the Kettle Lighthouse?", ("kettle.md", KETTLE))
    with caplog.at_level(logging.INFO, logger="arag.server"):
        chunks = _stream(url, {"model": "rag", "messages": _user(message)}, OPEN_WEBUI)
    answer = _content(chunks)
    assert "Ada Byrne" in answer
    assert "[1]" in answer
    assert "tags" not in answer
    assert embeddings.queries > 0  # the question itself still went to retrieval
    assert not any("event" in c for c in chunks)  # Open WebUI shows its own source already, as [1]
    assert [(c["number"], c["source"]) for c in chunks[-1]["citations"]] == [(1, ATTACHED_SOURCE)]
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("completion ")]
    assert "exit_reason=answered" in line
    assert "citations=1" in line
    assert "client=open-webui" in line


def test_non_streaming_answers_carry_the_steps_as_reasoning(served: tuple[str, CountingEmbeddings]) -> None:
    url, _ = served
    reply = _post(url, {"model": "rag", "messages": _user(EIFFEL)}, OPEN_WEBUI)
    message = reply["choices"][0]["message"]
    assert "retrieve: " in message["reasoning_content"]
    assert "330 metres" in message["content"]
    assert "usage" not in reply


def test_rlm_acknowledges_a_pasted_text_and_then_answers_about_it(served: tuple[str, CountingEmbeddings]) -> None:
    url, _ = served
    text = "Filler about nothing in particular and more of it. " * 60 + "The vault code is 4711."
    first = _post(url, {"model": "rlm", "messages": _user(text)}, OPEN_WEBUI)
    content = first["choices"][0]["message"]["content"]
    assert content == f"Got {len(text.split())} words of text; ask a question about it."
    assert first["arag"]["exit_reason"] == "acknowledged"
    follow = [*_user(text), {"role": "assistant", "content": content}, *_user("What is the vault code?")]
    assert "4711" in _post(url, {"model": "rlm", "messages": follow})["choices"][0]["message"]["content"]


def test_hostile_prompts_are_read_in_linear_time() -> None:
    """Many openers without closers (a body may be ARAG_SERVER_MAX_BODY bytes) take no long scan."""
    import time

    started = time.perf_counter()
    for prompt in [
        "<context>" + "<source id=1>x" * 50_000 + "</context>",
        "<chat_history>" * 50_000,
        "Responses from models: " + '"""' * 100_000,
        "emoji Message: " + "```" * 100_000 + "x",
    ]:
        background_request(_user(prompt))
        rag_prompt(prompt)
    assert time.perf_counter() - started < 2.0


def test_non_streamed_sources_keep_every_attached_number(served: tuple[str, CountingEmbeddings]) -> None:
    url, _ = served
    message = _rag_message(
        "Who was the last keeper of the Kettle Lighthouse?", ("kettle.md", KETTLE), ("bees.md", "Bees make honey.")
    )
    reply = _post(url, {"model": "rag", "messages": _user(message)}, OPEN_WEBUI)
    assert "Ada Byrne" in reply["choices"][0]["message"]["content"]
    names = [s["source"]["name"] for s in reply["sources"]]
    assert names[:2] == ["kettle.md", "bees.md"]  # [1] and [2] as Open WebUI numbered them, cited or not
    assert all(s["metadata"][0]["source"] == s["source"]["id"] for s in reply["sources"])
    plain = _post(url, {"model": "rag", "messages": _user(EIFFEL)})
    assert [s["source"]["name"] for s in plain["sources"]] == ["Eiffel Tower"]
