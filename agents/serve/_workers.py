"""``arag serve --workers N``: N server processes on one port, each a stateless replica.

The parent binds the port and runs uvicorn's process supervisor (``uvicorn.supervisors.
Multiprocess``): it starts N worker processes that share the listening socket, health-checks
them, and starts a new one when one dies (a worker killed with SIGKILL is replaced; its clients
see their connection closed, not a hang); a worker that cannot build its agents logs one line and
exits with uvicorn's start-up failure code, which stops the supervisor instead of restarting it
for ever. Each worker builds its own agents from the same
settings (sent to it pickled: command-line options included), so what the workers share has to
live outside them:

- the store: a Qdrant server (``ARAG_QDRANT_URL``). The embedded store and qdrant-client's local
  mode are folders one process opens at a time, so more than one worker over them is refused
  (:func:`check_workers`) with the way out;
- chat threads: Postgres (``ARAG_THREADS_URL``), so a thread started on one worker continues on
  any other. With the SQLite default the workers share one file on this machine (it works, one
  writer at a time); a warning says so.

Admission limits (``ARAG_SERVER_MAX_RUNS``, ``..._MAX_QUEUE``) and refusal counts are per worker.
Across machines, run one ``arag serve`` per machine behind a proxy (``docs/deployment.md``).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from agents.serve._connections import http_protocol, log_limits, uvicorn_options
from agents.settings import Settings

__all__ = ["check_workers", "serve_workers"]

logger = logging.getLogger("arag.server")

LogLevel = Literal["debug", "info", "warning"]


def check_workers(settings: Settings, workers: int) -> None:
    """Refuse more than one worker over a store only one process can open.

    Raises:
        ValueError: ``workers`` is below 1, or above 1 with the embedded or local-mode store.
    """
    if workers < 1:
        msg = f"--workers must be at least 1, got {workers}"
        raise ValueError(msg)
    backend = settings.store.effective_backend
    if workers > 1 and backend != "server":
        msg = (
            f"--workers {workers} needs a Qdrant server: the {backend} store ({settings.store.location}) is a "
            "folder that one process opens at a time. Point every worker at a Qdrant server with "
            "ARAG_QDRANT_URL=http://host:6333 (`arag store migrate --to URL` copies this store there), "
            "or serve with one worker"
        )
        raise ValueError(msg)


class _WorkerConfig(uvicorn.Config):
    """The uvicorn config the supervisor pickles into each worker; the worker builds the app
    (agents, model, thread store) and the guarded protocol in :meth:`load`."""

    def __init__(self, settings: Settings, workers: int, log_level: LogLevel) -> None:
        self.arag_settings = settings
        # The app is replaced by the one built in load(); the options are arag serve's own.
        super().__init__("agents.serve.app:create_app", workers=workers, **uvicorn_options(settings, log_level))

    def load(self) -> None:
        if self.loaded:
            return
        from agents.serve.app import ready_app

        settings = self.arag_settings
        try:
            app = ready_app(settings, owns_agents=True)
        except Exception as exc:
            # One line, and the exit code that tells the supervisor not to start it again: a
            # worker that cannot build its agents would fail the same way on every restart.
            logger.error("worker %d cannot start: %s: %s", os.getpid(), type(exc).__name__, exc)
            sys.exit(STARTUP_FAILURE)
        self.app, self.http = app, http_protocol(app, settings)
        log_limits(settings)
        super().load()


def serve_workers(settings: Settings, workers: int, *, log_level: LogLevel = "info") -> None:
    """Serve with ``workers`` processes on ``settings.server.host:port`` until interrupted.

    Raises:
        ValueError: See :func:`check_workers`.
        ThreadStoreUnavailableError: ``ARAG_THREADS_URL`` names a database that does not answer.
    """
    from uvicorn.supervisors import Multiprocess

    check_workers(settings, workers)
    if settings.store.threads_url is not None:
        # Once here, before any worker starts: an unreachable database is one error line, and the
        # checkpointer's migrations run once rather than in every worker.
        from agents._thread_store import open_thread_store

        open_thread_store(settings).close()
    else:
        logger.warning(
            "%d workers share the SQLite thread file %s; set ARAG_THREADS_URL=postgresql://... to keep threads "
            "in Postgres (shared across machines, no single-writer lock)",
            workers,
            settings.store.threads_file,
        )
    config = _WorkerConfig(settings, workers, log_level)
    config.configure_logging()
    socket = config.bind_socket()
    Multiprocess(config, sockets=[socket]).run()
