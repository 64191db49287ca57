"""The deployment pieces: the compose file (every ARAG_* variable a real setting, versions
stated, the services wired to each other) and the Qdrant cluster options."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from agents.components import build_store
from agents.settings import Settings, env_name
from tools.store import QdrantEngine, QdrantStore

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "deploy" / "compose.yaml"


def _setting_variables() -> set[str]:
    names = set()
    for group in Settings.model_fields.values():
        model = group.annotation
        for field in getattr(model, "model_fields", {}).values():
            names.add(env_name(field))
    return names


def test_every_arag_variable_in_the_compose_file_and_the_guide_is_a_setting() -> None:
    known = _setting_variables()
    for path in (COMPOSE, ROOT / "docs" / "deployment.md"):
        used = set(re.findall(r"\bARAG_[A-Z0-9_]+", path.read_text())) - {"ARAG_TEST_QDRANT_URL"}  # the tests' own
        assert used, path
        assert used <= known, f"{path.name}: not settings: {sorted(used - known)}"


def test_the_compose_file_states_versions_and_wires_the_services() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services: dict[str, Any] = compose["services"]
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image, f"{name}: {image!r} states no version"
        assert not image.endswith(":latest"), name
    replicas = [s for n, s in services.items() if n.startswith("arag-")]
    assert len(replicas) == 2
    for replica in replicas:
        env = replica["environment"]
        assert env["ARAG_QDRANT_URL"] == "http://qdrant:6333"
        assert env["ARAG_THREADS_URL"].startswith("postgresql://arag:")
        assert "@postgres:5432/" in env["ARAG_THREADS_URL"]
        assert replica["command"][-4:] == ["--host", "0.0.0.0", "--port", "8000"]
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
    proxy = " ".join(services["proxy"]["command"])
    assert "--to arag-1:8000 --to arag-2:8000" in proxy
    assert services["open-webui"]["environment"]["OPENAI_API_BASE_URL"] == "http://proxy:8000/v1"


def test_cluster_settings_reach_the_store() -> None:
    settings = Settings(
        store={
            "qdrant_url": "http://127.0.0.1:9",
            "qdrant_shards": 3,
            "qdrant_replication": 2,
            "qdrant_write_consistency": 2,
        }
    )
    store = build_store(settings)
    assert isinstance(store, QdrantStore)
    assert store._engine.cluster == {"shard_number": 3, "replication_factor": 2, "write_consistency_factor": 2}
    store.close()
    with pytest.raises(ValidationError, match="cannot exceed ARAG_QDRANT_REPLICATION"):
        Settings(store={"qdrant_write_consistency": 2})
    with pytest.raises(ValueError, match="unknown cluster options"):
        QdrantStore(":memory:", cluster={"shards": 2})


def test_collections_are_created_with_the_cluster_options() -> None:
    created: dict[str, Any] = {}

    class Client:
        def create_collection(self, name: str, **kwargs: Any) -> None:
            created.update(kwargs, name=name)

        def create_payload_index(self, *args: Any) -> None:
            pass

    engine = QdrantEngine(Client(), local=False, cluster={"shard_number": 2, "write_consistency_factor": 1})  # type: ignore[arg-type]
    engine.create("docs", dimension=8, metadata={}, indexed=["doc_id"])
    assert created["shard_number"] == 2
    assert created["write_consistency_factor"] == 1
    assert "replication_factor" not in created  # unset: the server's default
    local = QdrantStore(":memory:", cluster={"shard_number": 2})
    assert local._engine.cluster == {}  # local mode has no shards
    local.close()
