"""The close-and-``with`` behaviour shared by the agents that ``from_settings`` builds and by the
sets of agents :func:`agents.build.build_agents` and the server build."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self


class OwnsResources:
    """Closes what was opened for it (store, thread database, embedding cache) on :meth:`close`
    or at the end of a ``with`` block; an agent built from parts you pass in owns nothing."""

    owned: Sequence[Any] = ()
    """What :meth:`close` closes, in order."""

    def close(self) -> None:
        """Close what was opened for this object (store, thread database)."""
        for resource in self.owned:
            resource.close()
        self.owned = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
