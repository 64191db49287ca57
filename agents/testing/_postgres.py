"""A real, throwaway PostgreSQL server for thread-store tests and benchmarks (yours and the project's).

``initdb`` into a fresh temporary folder, ``postgres`` on a free loopback port (and its socket in
that folder, nowhere else), trust authentication for the one user ``arag``. PostgreSQL refuses to
run as root, so under root the server runs as an unprivileged user (``postgres`` when the system
has one, else ``nobody``), owning only its folder. :meth:`PostgresServer.stop` and
:meth:`~PostgresServer.start` restart it on the same port and data, as a database restart does.

```python
with PostgresServer() as pg:
    url = pg.create_database("threads")      # postgresql://arag@127.0.0.1:PORT/threads
```
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

from agents.testing._ports import free_port

__all__ = ["PostgresServer", "missing_postgres"]


def missing_postgres() -> str | None:
    """Why no throwaway Postgres can start here (``None``: it can)."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if shutil.which(tool) is None:
            return f"{tool} is not on the PATH (PostgreSQL 15: Debian's postgresql package)"
    return None


def _server_user() -> str | None:
    """The user to run the server as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    msg = "running as root and no unprivileged user (postgres, nobody) exists to run PostgreSQL as"
    raise RuntimeError(msg)


class PostgresServer:
    """One PostgreSQL server in a temporary folder (removed by :meth:`close`)."""

    def __init__(self) -> None:
        if (reason := missing_postgres()) is not None:
            raise RuntimeError(reason)
        self.user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="arag-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "arag", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.running = False

    def _run(self, *command: str) -> None:
        done = subprocess.run(  # noqa: S603 - PostgreSQL's own tools, arguments built here
            command, user=self.user, capture_output=True, text=True, timeout=120, check=False, cwd=self.root
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.is_file() else ""
            msg = f"{command[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}\n{log}"
            raise RuntimeError(msg)

    @property
    def url(self) -> str:
        """The URL of the default database (``postgres``)."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://arag@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        """Start (or start again) on the same port and data; returns once it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop: ``fast`` (sessions ended, as a restart does), ``immediate`` (as a crash does)."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
            self.running = False

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # a name made here, quoted
        return self.database_url(name)

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
