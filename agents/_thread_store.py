"""Where chat threads are kept: a SQLite file (the default) or Postgres (``ARAG_THREADS_URL``).

```python
store = open_thread_store(settings)   # SqliteSaver on <data_dir>/threads.sqlite, or PostgresSaver
store.checkpointer                    # what the RAG and ReAct agents are compiled with
store.check()                         # raises ThreadStoreUnavailableError when Postgres does not answer
store.close()
```

SQLite is one file on one machine: the threads of one process (several processes on one file
work, but slowly, and never across machines). Postgres is LangGraph's own checkpointer
(``langgraph-checkpoint-postgres``) over a ``psycopg_pool`` connection pool, so every ``arag
serve`` process and replica pointed at one database continues every thread. The pool:

- opens at start-up and waits at most ``ARAG_THREADS_TIMEOUT`` s for its first connection (an
  unreachable database fails at once, saying where it looked, password left out);
- runs the checkpointer's migrations (``setup()``) under a Postgres advisory lock, so replicas
  starting together do not race each other's ``CREATE TABLE``;
- checks each connection as it is taken (a connection broken by a database restart is dropped
  and replaced, so the server recovers by itself once the database is back), and waits at most
  ``ARAG_THREADS_TIMEOUT`` s for one; past it the request fails with
  :class:`ThreadStoreUnavailableError`, which the server answers with a 503.

Every checkpoint is written in autocommit mode as its step ends, so a process killed mid-run
loses only the step in flight: the thread reads, and continues, from its last committed step.
"""

from __future__ import annotations

import math
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from langgraph.checkpoint.base import BaseCheckpointSaver

from agents.settings import Settings

__all__ = ["ThreadStore", "ThreadStoreUnavailableError", "is_unavailable", "open_thread_store", "redacted"]

_SETUP_LOCK = 0x61726167  # "arag": the advisory lock replicas take around setup()


class ThreadStoreUnavailableError(Exception):
    """The thread store did not answer (Postgres down, restarting, or out of connections)."""


@dataclass
class ThreadStore:
    """A checkpointer and what it holds open."""

    checkpointer: BaseCheckpointSaver[Any]
    where: str
    """``sqlite:<file>`` or the Postgres URL without its password."""
    kind: str
    """``sqlite`` or ``postgres``."""
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _check: Callable[[], None] | None = None

    def check(self) -> None:
        """Raise :class:`ThreadStoreUnavailableError` when the store does not answer now (SQLite always does)."""
        if self._check is None:
            return
        try:
            self._check()
        except Exception as exc:
            if is_unavailable(exc):
                raise ThreadStoreUnavailableError(unavailable_message(self, exc)) from exc
            raise

    def close(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers.clear()


def open_thread_store(settings: Settings) -> ThreadStore:
    """The thread store of the settings: Postgres when ``ARAG_THREADS_URL`` is set, else SQLite.

    Raises:
        ThreadStoreUnavailableError: Postgres could not be reached within ``ARAG_THREADS_TIMEOUT`` s.
    """
    url = settings.store.threads_url
    if url is not None:
        return _postgres(url.get_secret_value(), settings.store.threads_pool_size, settings.store.threads_timeout)
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = settings.store.threads_file
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, check_same_thread=False)
    return ThreadStore(SqliteSaver(connection), f"sqlite:{path}", "sqlite", [connection.close])


def _postgres(url: str, pool_size: int, timeout: float) -> ThreadStore:
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    where = redacted(url)
    pool: ConnectionPool[Any] = ConnectionPool(
        url,
        min_size=1,
        max_size=pool_size,
        timeout=timeout,
        # What PostgresSaver needs of a connection: autocommit (each checkpoint committed as
        # written), dict rows, no server-side prepared statements (they break behind PgBouncer).
        kwargs={
            "autocommit": True,
            "prepare_threshold": 0,
            "row_factory": dict_row,
            "connect_timeout": max(1, math.ceil(timeout)),
        },
        check=ConnectionPool.check_connection,
        open=False,
        name="arag-threads",
    )
    try:
        pool.open(wait=True, timeout=timeout)
        with pool.connection() as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK,))
            try:
                PostgresSaver(connection).setup()
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
    except Exception as exc:
        pool.close()
        if is_unavailable(exc):
            msg = (
                f"cannot reach the thread store at {where} within {timeout:g} s (ARAG_THREADS_URL): {_first_line(exc)}"
            )
            raise ThreadStoreUnavailableError(msg) from exc
        raise

    def ping() -> None:
        with pool.connection(timeout=timeout) as connection:  # the pool's check runs on the way out of the pool
            connection.execute("SELECT 1")

    return ThreadStore(PostgresSaver(pool), where, "postgres", [pool.close], ping)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the thread store could not be reached or went away:
    a Postgres connection refused, dropped or not free in time, or SQLite's file locked."""
    psycopg = sys.modules.get("psycopg")
    seen: BaseException | None = exc
    for _ in range(8):  # a short chain: __cause__ / __context__
        if seen is None:
            return False
        if isinstance(seen, ThreadStoreUnavailableError):
            return True
        if psycopg is not None and isinstance(seen, psycopg.OperationalError | psycopg.InterfaceError):
            return True
        if isinstance(seen, sqlite3.OperationalError) and "locked" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unavailable_message(store: ThreadStore | None, exc: BaseException) -> str:
    """What a client is told when the thread store failed (no password, one line of the error)."""
    where = store.where if store is not None else "the thread store"
    return f"the thread store ({where}) is not answering: {_first_line(exc)}; retry shortly"


def redacted(url: str) -> str:
    """A database URL without its password (``postgresql://arag:***@db:5432/arag``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{user}:***@{host}{port}").geturl()


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())  # one line: whitespace runs, newlines included, become a space
    return text[:200] or type(exc).__name__
