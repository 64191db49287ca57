"""``arag serve``'s uvicorn set-up in a child process, over the offline test agents, for tests
whose behaviour depends on uvicorn (timeouts, connection caps, open-file limits).

    python -m tests.abuse_server DATA_DIR [NOFILE]

Settings come from ``ARAG_*`` variables, as for ``arag serve``; the embeddings are the fake
hashing embedder behind the real SQLite :class:`~tools.embeddings.CachedEmbeddings`, and the
open-files limit (soft and hard) is ``NOFILE`` when given. uvicorn logs ``running on
http://127.0.0.1:PORT`` to stderr when it listens.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import uvicorn

from agents.serve import create_app, uvicorn_config
from agents.settings import Settings
from agents.testing import FakeEmbeddings
from tests.serving import offline_agents
from tools.embeddings import CachedEmbeddings
from tools.store import QdrantStore


def main() -> None:
    data_dir = Path(sys.argv[1])
    if len(sys.argv) > 2:
        nofile = int(sys.argv[2])
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    settings = Settings(server={"port": 0})
    embeddings = CachedEmbeddings(FakeEmbeddings(), data_dir / "cache" / "embeddings.sqlite")
    agents = offline_agents(QdrantStore(":memory:"), embeddings)
    agents.owned.append(embeddings)
    app = create_app(settings, agents=agents)
    try:
        uvicorn.Server(uvicorn_config(app, settings)).run()
    finally:
        agents.close()


if __name__ == "__main__":
    main()
