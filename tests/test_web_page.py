"""The web chat page (``GET /`` of ``arag serve``) in headless Chromium: a streamed answer with its
step progress, citations opening the cited passage, a follow-up in the same thread, threads kept
in the sidebar and reloaded from the server, inline errors, and the API-key prompt.

Needs the ``playwright`` package and a Chromium; skips (saying how to get them) without either.
A screenshot of the chat is saved to ``runs/artifacts/web-chat.png`` (or ``$ARAG_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.serve import create_app
from agents.settings import Settings
from agents.testing import FakeEmbeddings
from tests.browser import screenshot_path
from tests.serving import offline_agents, running
from tools.store import QdrantStore

TIMEOUT_MS = 10_000
KEY = "web-test-key"


def serve(settings: Settings) -> Any:
    return running(create_app(settings, agents=offline_agents(QdrantStore(":memory:"), FakeEmbeddings())))


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def ask(page: Any, question: str) -> Any:
    """Type the question, send it with Enter, wait for the run to end; the new turn."""
    before = page.locator(".turn").count()
    box = page.locator("#question")
    box.fill(question)
    box.press("Enter")
    turn = page.locator(".turn").nth(before)
    expect(turn.locator(".msg.user")).to_have_text(question)
    expect(turn.locator(".msg.assistant")).not_to_have_attribute("data-state", "streaming")
    return turn


def screenshot(page: Any, capsys: pytest.CaptureFixture[str]) -> Path:
    path = screenshot_path("web-chat.png")
    page.screenshot(path=str(path))
    with capsys.disabled():
        print(f"\nweb chat screenshot: {path}")
    return path


def test_ask_cite_follow_up_and_reload_a_thread(page: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with serve(Settings()) as url:
        page.goto(url + "/")
        expect(page.locator("#model")).to_have_value("rag")
        expect(page.locator("#model option[value=react]")).to_be_disabled()

        turn = ask(page, "How tall is the Eiffel Tower?")
        answer = turn.locator(".answer")
        expect(answer).to_contain_text("330 metres")
        expect(turn.locator(".msg.assistant")).to_have_attribute("data-state", "done")
        expect(answer).not_to_contain_text("Sources")  # references: false; the page lists them itself
        steps = turn.locator(".steps")
        expect(steps).to_contain_text("retrieve: 2 chunks from landmarks")
        assert turn.locator(".step").count() >= 4
        expect(steps).not_to_have_attribute("open", "")  # collapsed once the answer is in
        expect(turn.locator(".sources")).to_contain_text("Eiffel Tower")

        answer.locator(".citation[data-n='1']").click()
        passage = page.locator("#passage")
        expect(passage).to_be_visible()
        expect(page.locator("#passage-title")).to_contain_text("Eiffel Tower")
        expect(page.locator("#passage-meta")).to_contain_text("landmarks")
        expect(page.locator("#passage-text")).to_have_text(
            "The Eiffel Tower in Paris is 330 metres tall and was completed in 1889."
        )

        follow_up = ask(page, "When was it completed?")
        expect(follow_up.locator(".answer")).to_contain_text("1889")
        expect(follow_up.locator(".steps")).to_contain_text("follow-up")  # the server kept the thread
        threads = page.locator(".thread")
        expect(threads).to_have_count(1)
        expect(threads.first).to_contain_text("How tall is the Eiffel Tower?")
        screenshot(page, capsys)

        page.keyboard.press("Escape")
        expect(passage).to_be_hidden()
        page.locator("#new-chat").click()
        expect(page.locator(".turn")).to_have_count(0)

        with page.expect_response(lambda r: "/v1/threads/" in r.url and r.status == 200):
            threads.first.click()
        expect(page.locator(".turn")).to_have_count(2)
        expect(page.locator(".msg.user")).to_have_text(["How tall is the Eiffel Tower?", "When was it completed?"])
        expect(page.locator(".answer").last).to_contain_text("1889")
        page.locator(".source").first.click()  # citations of past answers come from localStorage
        expect(page.locator("#passage-text")).to_contain_text("330 metres tall")


def sse(*chunks: dict[str, Any]) -> str:
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def test_errors_show_inline_and_text_stays_text(page: Any) -> None:
    with serve(Settings()) as url:
        page.goto(url + "/")
        expect(page.locator("#model option")).to_have_count(3)
        page.locator("#model").select_option("rlm")
        question = "<img src=x onerror=window.pwned=1> what is this?"
        turn = ask(page, question)  # a 400 before the stream starts
        expect(turn.locator(".error")).to_contain_text("model 'rlm' answers over a long text")
        expect(turn.locator(".msg.assistant")).to_have_attribute("data-state", "error")

        page.locator("#model").select_option("rag")
        stream = [
            chunk({"role": "assistant", "content": ""}, arag={"status": "accepted"}),
            chunk({"reasoning_content": "analyze ...\n"}, arag={"step": {"event": "step_start", "node": "analyze"}}),
            chunk({}, arag={"draft": "The tower is 3"}),
            {"error": {"message": "the run did not finish within 1 s (ARAG_SERVER_DEADLINE)", "type": "server_error"}},
        ]
        page.route(
            "**/v1/chat/completions", lambda route: route.fulfill(body=sse(*stream), content_type="text/event-stream")
        )
        turn = ask(page, "How tall is the Eiffel Tower?")  # an error event mid-stream
        expect(turn.locator(".error")).to_contain_text("ARAG_SERVER_DEADLINE")
        expect(turn.locator(".steps")).to_contain_text("analyze")
        expect(turn.locator(".draft")).to_be_hidden()

        hostile = {
            "number": 1,
            "title": "<img src=x onerror=window.pwned=2>",
            "source": "s",
            "doc_id": "d",
            "snippet": "<b>snippet</b>",
            "text": "<b>passage</b>",
        }
        stream = [
            chunk({}, arag={"draft": "<i>draft</i>"}),
            chunk({"content": "Markup <script>window.pwned=3</script> stays text [1]."}),
            chunk({}, "stop", citations=[hostile], arag={"exit_reason": "answered", "thread_id": None}),
        ]
        page.unroute("**/v1/chat/completions")
        page.route(
            "**/v1/chat/completions", lambda route: route.fulfill(body=sse(*stream), content_type="text/event-stream")
        )
        turn = ask(page, "And the markup?")
        expect(turn.locator(".answer")).to_contain_text("<script>window.pwned=3</script> stays text")
        turn.locator(".citation").click()
        expect(page.locator("#passage-title")).to_have_text("[1] <img src=x onerror=window.pwned=2>")
        expect(page.locator("#passage-text")).to_have_text("<b>passage</b>")
        expect(page.locator("#turns img, #turns script, #turns b, #turns i, #passage b, #passage img")).to_have_count(0)
        assert page.evaluate("window.pwned") is None


def test_api_key_is_asked_for_kept_and_sent(page: Any) -> None:
    with serve(Settings(server={"api_key": KEY})) as url:
        page.goto(url + "/")
        auth = page.locator("#auth")
        expect(auth).to_be_visible()
        expect(auth).to_contain_text("API key")
        page.locator("#api-key").fill("wrong")
        page.locator("#api-key").press("Enter")
        expect(page.locator("#auth-message")).to_contain_text("refused")

        page.locator("#api-key").fill(KEY)
        page.locator("#save-key").click()
        expect(auth).to_be_hidden()
        expect(page.locator("#model option")).to_have_count(3)
        turn = ask(page, "How tall is the Eiffel Tower?")
        expect(turn.locator(".answer")).to_contain_text("330")
        assert page.evaluate("JSON.parse(localStorage.getItem('arag.key'))") == KEY

        page.reload()  # the kept key is used without asking again
        expect(page.locator("#model option")).to_have_count(3)
        expect(auth).to_be_hidden()
