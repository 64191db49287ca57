"""The chat front ends' helpers where they were first imported; they live in :mod:`agents.serve.chat`."""

from agents.serve.chat import (
    NO_LONG_TEXT,
    background_task_reply,
    citation_payload,
    long_text,
    message_text,
    neutralise_markdown,
    split_conversation,
    with_references,
)

__all__ = [
    "NO_LONG_TEXT",
    "background_task_reply",
    "citation_payload",
    "long_text",
    "message_text",
    "neutralise_markdown",
    "split_conversation",
    "with_references",
]
