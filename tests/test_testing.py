"""The public test doubles of ``agents.testing``: their documented examples run, and they behave
as the docstrings and the README's "Testing your own agents" say."""

from __future__ import annotations

import doctest
import importlib
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_openai import ChatOpenAI

import agents.testing
from agents.testing import (
    ChatReply,
    FakeEmbeddings,
    Fault,
    FunctionChatModel,
    OpenAIStub,
    ScriptedChatModel,
    ScriptExhaustedError,
    function_model,
    scripted,
)

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize(
    "module", ["agents.testing", "agents.testing._chat", "agents.testing._embeddings", "agents.testing._openai_stub"]
)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module} has no examples"
    assert result.failed == 0


def test_the_readme_section_runs() -> None:
    section = README.read_text().split("### Testing your own agents", 1)[1]
    section = re.split(r"\n#{2,3} ", section, maxsplit=1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


def test_every_public_name_imports_and_unknown_names_fail() -> None:
    namespace: dict[str, Any] = {}
    exec("from agents.testing import *", namespace)
    assert set(agents.testing.__all__) <= set(namespace)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = agents.testing.Nope  # type: ignore[attr-defined]


# -- chat models -----------------------------------------------------------------------------


def test_a_script_replies_in_order_and_records_prompts() -> None:
    call = {"name": "search", "args": {"query": "x"}, "id": "c1", "type": "tool_call"}
    model = scripted("text", {"relevant": [1]}, AIMessage("", tool_calls=[call]), ValueError("bad request"))
    assert model.bind_tools([]) is model
    assert model.invoke("one").content == "text"
    assert json.loads(str(model.invoke("two").content)) == {"relevant": [1]}
    assert model.invoke("three").tool_calls[0]["name"] == "search"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="bad request"):
        model.invoke("four")
    assert model.remaining == 0
    assert [p[-1].content for p in model.prompts] == ["one", "two", "three", "four"]


def test_a_script_that_runs_out_fails_loudly() -> None:
    model = scripted("only one")
    model.invoke("first")
    with pytest.raises(ScriptExhaustedError, match=r"ran out after 1 calls; last prompt: 'the extra call'"):
        model.invoke([HumanMessage("the extra call")])
    assert issubclass(ScriptExhaustedError, AssertionError)  # a test failure, not an error in the code
    assert scripted().prompts == []  # each model has its own record


def test_function_model_computes_each_reply_and_can_be_slow() -> None:
    def reply(messages: list[BaseMessage]) -> Any:
        text = str(messages[-1].content)
        return {"echo": text} if text.startswith("{") else text.upper()

    model = function_model(reply, sleep=0.05)
    started = time.perf_counter()
    answers = model.batch(["a", "b", "{c"])
    assert time.perf_counter() - started >= 0.05
    assert [a.content for a in answers] == ["A", "B", '{"echo": "{c"}']
    assert isinstance(model, FunctionChatModel)
    assert not isinstance(model, ScriptedChatModel)


# -- embeddings ------------------------------------------------------------------------------


def test_fake_embeddings_are_deterministic_unit_vectors_close_for_shared_words() -> None:
    a, b = FakeEmbeddings(), FakeEmbeddings()
    texts = ["penguins breed in the antarctic winter", "emperor penguins breed", "rockets launch satellites", ""]
    vectors = a.embed_array(texts)
    assert vectors.dtype == np.float32
    assert vectors.shape == (4, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert a.embed_documents(texts) == b.embed_documents(texts)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert a.calls == [4, 4]
    assert a.embed_query("penguins") == b.embed_query("penguins")


def test_fake_embeddings_take_another_identity_or_size() -> None:
    other = FakeEmbeddings(model_name="other-model", dimension=8)
    assert (other.model_name, other.dimension, len(other.embed_query("x"))) == ("other-model", 8, 8)
    assert (FakeEmbeddings.model_name, FakeEmbeddings.dimension) == ("fake-hash-64", 64)
    with pytest.raises(ValueError, match="dimension must be >= 1, got 0"):
        FakeEmbeddings(dimension=0)


# -- the OpenAI-compatible stub --------------------------------------------------------------


def test_the_stub_sends_a_malformed_body_as_is_then_serves_again() -> None:
    with OpenAIStub() as stub:
        model = ChatOpenAI(model="stub", base_url=stub.base_url, api_key="k", max_retries=0)  # type: ignore[arg-type]
        stub.fail_next(Fault(200, body='{"choices": ['))
        with pytest.raises(json.JSONDecodeError):
            model.invoke("hi")
        stub.reply(ChatReply("fine again"))
        assert model.invoke("hi").content == "fine again"
        assert len(stub.state.requests) == 2


def test_the_stub_answers_faults_with_status_and_retry_after() -> None:
    with OpenAIStub() as stub:
        stub.fail_next(Fault(429, retry_after=2.5))
        request = urllib.request.Request(stub.base_url + "/chat/completions", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 429
        assert caught.value.headers["Retry-After"] == "2.5"
        assert json.loads(caught.value.read())["error"]["message"] == "injected 429"
        with urllib.request.urlopen(request, timeout=5) as response:  # the fault was used up
            assert json.loads(response.read())["choices"][0]["message"]["content"] == "stub answer"
        assert stub.base_url.startswith("http://127.0.0.1:")
