"""The close-and-``with`` behaviour shared by the agents that ``from_settings`` builds."""

from __future__ import annotations

from typing import Any, Self


class OwnsResources:
    """Closes what the agent opened for itself (store, thread database) on :meth:`close` or at the
    end of a ``with`` block; an agent built from parts you pass in owns nothing."""

    _owned: list[Any]

    def close(self) -> None:
        """Close what :meth:`from_settings` opened (store, thread database)."""
        for resource in self._owned:
            resource.close()
        self._owned = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
