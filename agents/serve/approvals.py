"""Tool approval over HTTP: what a paused ReAct run says, and the chat commands that resume it.

A ``react`` run that reaches a tool named in ``ARAG_TOOLS_APPROVE`` ends with ``exit_reason:
"awaiting_approval"``, the waiting calls in the ``arag.pending`` field, and an answer text saying
how to go on. The paused run lives in the thread store, so any server process (or the same one
after a restart) resumes it, by either:

- ``POST /v1/threads/{id}/approval`` with ``{"model": "react", "decision": {"action": "approve"}}``
  (or ``{"action": "edit", "args": {...}}``, ``{"action": "reject", "reason": "..."}``, or
  ``"decisions": {call id: decision}``); it answers as a chat completion, streamed or not;
- the next chat message of the thread, for clients that only send messages: ``/approve``,
  ``/reject [reason]`` or ``/edit {"arg": ...}`` (one waiting call). Any other message while a
  call waits gets the waiting calls again, and runs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["approval_text", "parse_command"]


def approval_text(pending: Sequence[dict[str, Any]], thread_id: str) -> str:
    """The answer of a paused run: each waiting call, and the ways to go on."""
    calls = "; ".join(f"{p['tool']}({json.dumps(p.get('args') or {}, ensure_ascii=False)})" for p in pending)
    return (
        f"Waiting for your approval before running {calls}. Reply /approve, /reject [reason] or "
        f'/edit {{"arguments": ...}} in this thread, or POST /v1/threads/{thread_id}/approval.'
    )


def parse_command(text: str, pending: Sequence[dict[str, Any]]) -> dict[str, Any] | str | None:
    """The decision a chat message gives: a decision dict, an error text (a command that cannot
    apply), or ``None`` (the message is not an approval command)."""
    stripped = text.strip()
    word, _, rest = stripped.partition(" ")
    command = word.lower().lstrip("/")
    if not stripped.startswith("/") and command not in ("approve", "reject"):
        return None
    if command == "approve" and not rest.strip():
        return {"action": "approve"}
    if command == "reject":
        return {"action": "reject", "reason": rest.strip()}
    if command == "edit":
        if len(pending) != 1:
            return f"/edit applies to one waiting call; {len(pending)} wait: use POST /v1/threads/{{id}}/approval"
        try:
            args = json.loads(rest)
        except json.JSONDecodeError as exc:
            return f"/edit needs the new arguments as a JSON object ({exc.msg})"
        if not isinstance(args, dict):
            return "/edit needs the new arguments as a JSON object"
        return {"action": "edit", "args": args}
    return None if not stripped.startswith("/") else f"unknown command {word!r}: use /approve, /reject or /edit"
