"""State helpers shared by the graphs."""

from __future__ import annotations

from typing import Any

RESET = "__reset__"
"""First element of an update that replaces an accumulating list instead of extending it."""


def extend_or_reset(left: list[Any] | None, right: list[Any] | None) -> list[Any]:
    """Reducer of accumulating lists: extends, or replaces when the update starts with :data:`RESET`
    (a string, so checkpoints stay plain data)."""
    if right and isinstance(right[0], str) and right[0] == RESET:
        return list(right[1:])
    return [*(left or []), *(right or [])]
