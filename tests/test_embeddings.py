"""Embeddings: the disk cache (with a fake model) and the bundled local model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from agents.testing import FakeEmbeddings
from tools.embeddings import (
    CachedEmbeddings,
    LocalEmbeddings,
    embed_array,
    embedding_dimension,
    model_identity,
    openai_compatible_embeddings,
    warm_up,
)


def test_cache_embeds_each_text_once_and_survives_restart(tmp_path: Path) -> None:
    inner = FakeEmbeddings()
    cache = CachedEmbeddings(inner, tmp_path / "cache.sqlite")
    first = cache.embed_documents(["alpha beta", "gamma", "alpha beta"])
    assert inner.calls == [2]  # the duplicate is embedded once
    assert (cache.hits, cache.misses) == (1, 2)
    again = cache.embed_documents(["gamma", "alpha beta"])
    assert inner.calls == [2]
    assert again == [first[1], first[0]]

    reopened_inner = FakeEmbeddings()
    reopened = CachedEmbeddings(reopened_inner, tmp_path / "cache.sqlite")
    assert reopened.embed_query("gamma") == first[1]
    assert reopened_inner.calls == []


def test_cache_returns_float32_values_whether_cached_or_fresh(tmp_path: Path) -> None:
    cache = CachedEmbeddings(FakeEmbeddings(), tmp_path / "cache.sqlite")
    fresh = cache.embed_query("one two three")
    cached = cache.embed_query("one two three")
    assert fresh == cached
    assert np.array_equal(np.asarray(fresh, dtype=np.float32), np.asarray(fresh))


def test_cache_namespaces_keep_models_apart(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    a = CachedEmbeddings(FakeEmbeddings(), path, namespace="model-a")
    b_inner = FakeEmbeddings()
    b = CachedEmbeddings(b_inner, path, namespace="model-b")
    a.embed_query("shared text")
    b.embed_query("shared text")
    assert b_inner.calls == [1]
    assert CachedEmbeddings(FakeEmbeddings(), path).namespace == "fake-hash-64"


def test_cache_clear_and_empty_input(tmp_path: Path) -> None:
    inner = FakeEmbeddings()
    cache = CachedEmbeddings(inner, tmp_path / "c.sqlite")
    assert cache.embed_documents([]) == []
    cache.embed_query("x")
    cache.clear()
    cache.embed_query("x")
    assert inner.calls == [1, 1]


def test_identity_dimension_and_embed_array() -> None:
    fake = FakeEmbeddings()
    assert model_identity(fake) == "fake-hash-64"
    assert embedding_dimension(fake) == 64
    assert embed_array(fake, ["a b", "c"]).shape == (2, 64)
    assert embed_array(fake, ["a b"]).dtype == np.float32


def test_openai_compatible_embeddings_are_configured_for_offline_servers() -> None:
    embeddings = openai_compatible_embeddings("nomic-embed-text", base_url="http://127.0.0.1:9/v1")
    assert model_identity(embeddings) == "nomic-embed-text"
    # No client-side tiktoken pass: it would try to download encodings.
    assert embeddings.check_embedding_ctx_length is False  # type: ignore[attr-defined]


def test_local_embeddings_rejects_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        LocalEmbeddings(batch_size=0)


@pytest.mark.model
def test_local_model_is_normalised_and_semantic(real_embeddings: LocalEmbeddings) -> None:
    vectors = real_embeddings.embed_documents(
        ["The cat sat on the mat.", "A kitten rested on the rug.", "Quarterly revenue grew by 8%."]
    )
    assert len(vectors) == 3
    assert all(len(v) == 384 for v in vectors)
    assert all(math.isclose(float(np.linalg.norm(v)), 1.0, rel_tol=1e-4) for v in vectors)
    a, b, c = (np.asarray(v) for v in vectors)
    assert a @ b > a @ c + 0.2
    assert embedding_dimension(real_embeddings) == 384
    assert real_embeddings.embed_query("The cat sat on the mat.") == pytest.approx(vectors[0], abs=1e-5)
    # Every instance of a backend shares the process's one loaded model.
    assert LocalEmbeddings().encoder is real_embeddings.encoder
    assert LocalEmbeddings(backend="torch").model is LocalEmbeddings(backend="torch").model


@pytest.mark.model
def test_warm_up_loads_the_model_behind_a_cache(tmp_path: Path) -> None:
    """A cached warm-up text would load nothing: warm_up loads the model itself."""
    from tools import embeddings as module

    CachedEmbeddings(LocalEmbeddings(), tmp_path / "c.sqlite").embed_query("warm up")  # now cached
    module._ENCODERS.clear()  # as in a new process
    cache = CachedEmbeddings(LocalEmbeddings(), tmp_path / "c.sqlite")
    cache.embed_query("warm up")
    assert not module._ENCODERS  # a cache hit loads nothing
    warm_up(cache)
    assert module._ENCODERS, "the model did not load"
    fake = FakeEmbeddings()
    warm_up(CachedEmbeddings(fake, tmp_path / "d.sqlite"))
    assert fake.calls == [1]  # a model without load(): one text embedded past the cache
