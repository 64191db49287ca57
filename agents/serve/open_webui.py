"""Open WebUI as a front end: its requests recognised by their structure, its attached sources
read, and citations sent as the source events it draws chips from.

Open WebUI (checked against 0.12.4, ``open_webui/config.py`` and ``utils/task.py``) sends three
kinds of chat requests to an OpenAI connection:

- the user's chat, as the conversation;
- the same, with the last user message (or, with ``RAG_SYSTEM_CONTEXT``, the system message)
  wrapped in its RAG template when a file or knowledge base is attached: instructions, then
  ``<context><source id="1" name="...">text</source>...</context>``, then the user's query.
  :func:`rag_prompt` reads the query and the sources out of it;
- background requests, each a single user message (a model's own system prompt may precede
  it): title, tags, follow-ups, search queries, image prompt and autocomplete quote the chat in a
  ``<chat_history>`` block and ask for one JSON object (``{ "title": ... }``); the emoji prompt
  quotes one message in a ````` ``` ````` fence after ``Message:``; the merge prompt (several
  models' answers into one) ends with ``Responses from models:`` and ``\"\"\"``-quoted answers; the
  tool-choice prompt is a system message asking for ``{"tool_calls": [...]}`` before a
  ``Query:`` message. :func:`background_request` recognises each by that structure, never by a
  word anywhere (the RAG template says "Do not use XML tags", and a user may write "title"),
  and :meth:`BackgroundRequest.reply` answers it at once, in the shape asked for, without
  retrieval or a model.

Which requests come from Open WebUI (:func:`from_open_webui`): one carrying an
``X-OpenWebUI-*`` header (sent with ``ENABLE_FORWARD_USER_INFO_HEADERS``), one whose messages
hold its RAG template or a background prompt, or one with aiohttp's default User-Agent
(``Python/3.x aiohttp/3.x``: Open WebUI sets no User-Agent of its own, and the official
``openai`` clients send ``OpenAI/...``). For those the text "Sources" list is left out of the
answer by default (``ARAG_SERVER_OPEN_WEBUI_REFERENCES`` puts it back), since the source
events (:func:`source_event`) show each reference as a chip on its ``[n]`` mark.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from agents.events import Citation
from agents.serve.chat import message_text
from tools.extractive import extractive_answer
from tools.retrieval import RetrievedChunk

__all__ = [
    "ATTACHED_SOURCE",
    "AttachedSource",
    "BackgroundKind",
    "BackgroundRequest",
    "RagPrompt",
    "background_request",
    "from_open_webui",
    "merge_attached",
    "rag_prompt",
    "source_event",
    "sources_list",
    "title_for",
]

BackgroundKind = Literal[
    "title", "tags", "follow_ups", "queries", "image_prompt", "autocomplete", "emoji", "merge", "tools"
]

ATTACHED_SOURCE = "open-webui"
"""The ``source`` of a citation that is one of Open WebUI's attached ``<source>`` texts."""

# -- background requests ---------------------------------------------------------------------------

# Blocks are found with str.find, not lazy regular expressions: a hostile body of many openers
# without a closer would make those quadratic (the body may be ARAG_SERVER_MAX_BODY bytes).
_JSON_KEY = re.compile(r"\{\s*\"(\w+)\"\s*:")
_KEY_KINDS: dict[str, BackgroundKind] = {
    "title": "title",
    "tags": "tags",
    "follow_ups": "follow_ups",
    "queries": "queries",
    "prompt": "image_prompt",
    "text": "autocomplete",
}
_MERGED = "Responses from models:"
_TOOLS_ASKED = re.compile(r"\{\s*\"tool_calls\"\s*:\s*\[")
_TURN = re.compile(r"^(USER|ASSISTANT|SYSTEM):[ \t]?", re.M)


@dataclass(frozen=True, slots=True)
class BackgroundRequest:
    """One of Open WebUI's background requests, as :func:`background_request` found it."""

    kind: BackgroundKind
    prompt: str
    """The request's user message."""

    def reply(self) -> str:
        """The answer, in the shape the prompt asks for, made without retrieval or a model."""
        if self.kind == "emoji":
            return "🙂"
        if self.kind == "merge":
            answers = [a.strip() for a in _merge_answers(self.prompt) or []]
            return next((a for a in answers if a), "")
        if self.kind == "tools":
            return json.dumps({"tool_calls": []})
        users = [text for role, text in _turns(self.prompt) if role == "USER"]
        if self.kind == "title":
            return json.dumps({"title": title_for(users[0] if users else "")})
        if self.kind == "tags":
            return json.dumps({"tags": ["General"]})
        if self.kind == "follow_ups":
            return json.dumps({"follow_ups": []})
        if self.kind == "queries":
            last = " ".join(users[-1].split())[:300] if users else ""
            return json.dumps({"queries": [last] if last else []})
        if self.kind == "image_prompt":
            return json.dumps({"prompt": " ".join(users[-1].split())[:300] if users else ""})
        return json.dumps({"text": ""})  # autocomplete: no guess beats a wrong one


def _turns(prompt: str) -> list[tuple[str, str]]:
    """The ``ROLE: text`` turns of a prompt's ``<chat_history>`` block (a turn may span lines)."""
    history = _block(prompt, "<chat_history>", "</chat_history>")
    if history is None:
        return []
    block = history[2]
    marks = list(_TURN.finditer(block))
    return [
        (m.group(1), block[m.end() : marks[i + 1].start() if i + 1 < len(marks) else len(block)].strip())
        for i, m in enumerate(marks)
    ]


def background_request(messages: Sequence[Mapping[str, Any]]) -> BackgroundRequest | None:
    """The background request ``messages`` are, or ``None`` for a chat (the RAG template included).

    A background request is a single user message (system messages may come first) whose
    structure is one of Open WebUI's task prompts; see the module docstring.
    """
    roles = [m.get("role") for m in messages if isinstance(m, Mapping)]
    if len(roles) != len(messages) or roles.count("user") != 1 or roles[-1] != "user":
        return None
    if any(r not in ("system", "developer", "user") for r in roles):
        return None
    prompt = message_text(messages[-1].get("content"))
    system = "\n".join(message_text(m.get("content")) for m in messages[:-1])
    if _TOOLS_ASKED.search(system) and re.match(r"\s*(Query|History):", prompt):
        return BackgroundRequest("tools", prompt)
    if (history := _block(prompt, "<chat_history>", "</chat_history>")) is not None:
        # The keys of the JSON asked for, read from the instructions before the quoted chat (a
        # task prompt states its output, then quotes the chat), never from the chat itself.
        template = _without_blocks(prompt[: history[0]], "<text>", "</text>")  # autocomplete's examples
        kinds = {_KEY_KINDS[k] for k in _JSON_KEY.findall(template) if k in _KEY_KINDS}
        if len(kinds) == 1:
            return BackgroundRequest(kinds.pop(), prompt)
        return None
    ask, marked, quoted = prompt.partition("Message:")
    quoted = quoted.strip()
    if marked and "emoji" in ask.lower() and len(quoted) >= 6 and quoted[:3] == quoted[-3:] == "```":
        return BackgroundRequest("emoji", prompt)
    if _merge_answers(prompt):
        return BackgroundRequest("merge", prompt)
    return None


def _block(text: str, opening: str, closing: str) -> tuple[int, int, str] | None:
    """The first ``opening ... closing`` block of ``text`` (case-insensitive): start, end, inside."""
    lowered = text.lower()
    start = lowered.find(opening)
    end = lowered.find(closing, start + len(opening)) if start >= 0 else -1
    if end < 0:
        return None
    return start, end + len(closing), text[start + len(opening) : end]


def _without_blocks(text: str, opening: str, closing: str) -> str:
    kept = []
    while (found := _block(text, opening, closing)) is not None:
        kept.append(text[: found[0]])
        text = text[found[1] :]
    return "".join(kept) + text


def _merge_answers(prompt: str) -> list[str] | None:
    """The ``\"\"\"``-quoted answers that end a merge prompt, or ``None`` when it ends otherwise."""
    _, marked, tail = prompt.rpartition(_MERGED)
    parts = tail.strip().split('"""')
    # '"""a"""\n\n"""b"""' splits into '', 'a', '\n\n', 'b', '': answers at odd places, blanks between.
    if not marked or len(parts) < 3 or len(parts) % 2 == 0 or any(p.strip() for p in parts[::2]):
        return None
    return parts[1::2]


# -- titles ----------------------------------------------------------------------------------------

_ASKING = re.compile(
    r"^(?:(?:please|hi|hello|hey)[,!]?\s+)*"
    r"(?:(?:can|could|would|will)\s+you\s+)?(?:(?:please|kindly)\s+)?"
    r"(?:(?:tell|show|give)\s+me\s+(?:about\s+)?|explain\s+|describe\s+|summari[sz]e\s+|"
    r"i\s+(?:want|would\s+like)\s+to\s+know\s+(?:about\s+)?|"
    r"(?:who|what|when|where|why|which|whose|whom|how(?:\s+(?:many|much|tall|long|old|far|big|often|large))?)"
    r"(?:'s|\s+(?:is|was|are|were|did|does|do|can|could|should|would|will|has|have|had))?\s+)",
    re.I,
)
_LEADING_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.I)
_SMALL = {"a", "an", "and", "as", "at", "but", "by", "for", "from", "in", "into", "of", "on", "or", "the", "to", "with"}
_TRAILING = _SMALL | {"about", "over", "after", "before", "than", "that", "which", "who", "its", "their", "is", "was"}


def title_for(question: str, *, max_words: int = 6) -> str:
    """A chat title from its first question: the subject without the asking words, in title
    case, ending on a word that can end a title ("Last Keeper of the Kettle Lighthouse", not
    "Who was the last keeper of")."""
    text = " ".join(question.split())
    text = re.sub(r"[^\w\s'&/+.-]", " ", text)  # punctuation, quotes, emoji, markup
    text = " ".join(text.replace(" .", " ").split()).strip(" .")
    subject = _LEADING_ARTICLE.sub("", _ASKING.sub("", text, count=1))
    words = (subject or text).split()[:max_words]
    while words and words[-1].lower() in _TRAILING:
        words.pop()
    if not words:
        return "New Chat"
    return " ".join(
        w if any(ch.isupper() or ch.isdigit() for ch in w) else (w if i and w.lower() in _SMALL else w.capitalize())
        for i, w in enumerate(words)
    )


# -- the RAG template ------------------------------------------------------------------------------

_SOURCE_TAG = re.compile(r"<source((?:\s+[\w-]+=\"[^\"]*\")*)\s*>", re.I)
_ATTR = re.compile(r"([\w-]+)=\"([^\"]*)\"")


@dataclass(frozen=True, slots=True)
class AttachedSource:
    """One ``<source>`` of Open WebUI's RAG template: what the user attached (a file's passage,
    a knowledge base's, a web page's)."""

    number: int
    """Its ``id``: the ``[n]`` Open WebUI shows for it."""
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class RagPrompt:
    """A message in Open WebUI's RAG template: the user's query and the attached sources."""

    query: str
    sources: list[AttachedSource]


def rag_prompt(text: str) -> RagPrompt | None:
    """The query and attached sources of a message in Open WebUI's RAG template (instructions,
    ``<context>`` with ``<source id="n">`` texts, then the query), or ``None``."""
    context = _block(text, "<context>", "</context>")
    if context is None:
        return None
    sources: list[AttachedSource] = []
    for piece in context[2].split("</source>")[:-1]:  # each piece ends where a source closes
        opening = piece.rfind("<source")
        tag = _SOURCE_TAG.match(piece, opening) if opening >= 0 else None
        if tag is None:
            continue
        attrs = dict(_ATTR.findall(tag.group(1)))
        number = int(attrs["id"]) if attrs.get("id", "").isdigit() else len(sources) + 1
        body = piece[tag.end() :].strip()
        if body:
            sources.append(AttachedSource(number, html.unescape(attrs.get("name", "")), body))
    if not sources:
        return None
    query = text[context[1] :].strip() or text[: context[0]].strip()
    return RagPrompt(query, sources)


def merge_attached(question: str, final: dict[str, Any], attached: Sequence[AttachedSource]) -> dict[str, Any]:
    """A run's ``final`` item with the attached sources as extra evidence.

    The sentences of the attached texts that answer ``question`` are quoted first, each cited
    with its source's own number (the ``[n]`` Open WebUI already shows); the agent's retrieved
    citations follow, renumbered after the highest attached number. Nothing answers: the
    agent's own answer (its abstention) stands.
    """
    by_id = {f"{ATTACHED_SOURCE}-{s.number}": s for s in attached}
    chunks = [
        RetrievedChunk(id=key, score=1.0, source=ATTACHED_SOURCE, doc_id=s.name, title=s.name, text=s.text)
        for key, s in by_id.items()
    ]
    quoted = extractive_answer(question, chunks)
    offset = max(s.number for s in attached)
    answered = final["exit_reason"] == "answered" and bool(final["answer"])
    retrieved: list[Citation] = [replace(c, number=c.number + offset) for c in final["citations"]] if answered else []
    agent_text = _renumber(final["answer"], lambda n: n + offset) if answered else ""
    if quoted.abstained:
        return {**final, "answer": agent_text, "citations": retrieved} if answered else final
    numbers = {i + 1: by_id[c.id].number for i, c in enumerate(quoted.citations)}
    text = _renumber(quoted.text, lambda n: numbers.get(n, n))
    cited = [Citation.from_chunk(by_id[c.id].number, asdict(c)) for c in quoted.citations]
    return {
        **final,
        "answer": f"{text}\n\n{agent_text}" if agent_text else text,
        "citations": sorted([*cited, *retrieved], key=lambda c: c.number),
        "exit_reason": "answered",
        "error": None if not answered and final["exit_reason"] == "abstained" else final["error"],
    }


def _renumber(text: str, number: Callable[[int], int]) -> str:
    """``text`` with each ``[n]`` mark renumbered to ``[number(n)]``."""
    return re.sub(r"\[(\d+)\]", lambda m: f"[{number(int(m.group(1)))}]", text)


# -- who is asking, and what it is shown -------------------------------------------------------------

_AIOHTTP = re.compile(r"\baiohttp/\d", re.I)


def from_open_webui(headers: Mapping[str, str], messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a request comes from Open WebUI: an ``X-OpenWebUI-*`` header, aiohttp's default
    User-Agent, or its RAG template or a background prompt in the messages."""
    if any(name.lower().startswith("x-openwebui-") for name in headers):
        return True
    if _AIOHTTP.search(headers.get("user-agent", "")):
        return True
    if background_request(messages) is not None:
        return True
    return any(
        isinstance(m, Mapping) and rag_prompt(message_text(m.get("content"))) is not None
        for m in messages
        if isinstance(m, Mapping) and m.get("role") in ("user", "system")
    )


def _short_name(citation: Citation, limit: int = 30) -> str:
    """A chip's label: the title (or the file's name), cut at a word within ``limit`` characters."""
    name = " ".join((citation.title or citation.doc_id.rsplit("/", 1)[-1] or citation.source).split())
    if len(name) <= limit:
        return name
    cut = name[: limit - 1].rsplit(" ", 1)[0]
    return (cut if len(cut) > limit // 2 else name[: limit - 1]) + "…"


def source_event(citation: Citation) -> dict[str, Any]:
    """A citation as Open WebUI's source event (``{"type": "source", "data": ...}``): its
    passage, and an id of its own, so that ``[n]`` opens this passage."""
    ident = citation.chunk_id or f"arag-{citation.number}"
    name = _short_name(citation)
    return {
        "type": "source",
        "data": {
            "source": {"id": ident, "name": name},
            "document": [citation.text],
            "metadata": [{"source": ident, "name": name}],
        },
    }


def sources_list(citations: Sequence[Citation], attached: Sequence[AttachedSource]) -> list[dict[str, Any]]:
    """The ``sources`` of a non-streamed completion, as Open WebUI reads them from the response
    (the data of :func:`source_event`, one per source): every attached source first, in its own
    order (so ``[n]`` stays the attached source ``n``, cited or not), then the other citations."""
    shown = [
        source_event(Citation(s.number, f"{ATTACHED_SOURCE}-{s.number}", ATTACHED_SOURCE, s.name, s.name, "", s.text))
        for s in sorted(attached, key=lambda s: s.number)
    ]
    shown += [source_event(c) for c in citations if c.source != ATTACHED_SOURCE]
    return [event["data"] for event in shown]
