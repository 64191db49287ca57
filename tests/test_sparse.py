"""The BM25 encoder, and its congruence with a textbook BM25 once Qdrant applies the IDF."""

from __future__ import annotations

import itertools
import math
import random
import uuid
import zlib
from collections import Counter

import pytest

from tools.sparse import ENGLISH_STOPWORDS, Bm25Encoder, SparseVector, term_id
from tools.store import Point, QdrantStore

PLAIN = Bm25Encoder(language="none", stopwords=frozenset())
"""No stemming, no stopwords: terms are the lower-cased words, for hand-computed examples."""


def weights(vector: SparseVector) -> dict[int, float]:
    return dict(zip(vector.indices, vector.values, strict=True))


# -- tokenizer -------------------------------------------------------------------------------


def test_tokenize_lowercases_splits_drops_stopwords_and_stems() -> None:
    tokens = Bm25Encoder().tokenize("The Studies of RUNNING-dogs_and cats, in 2024!")
    # "the", "of", "and", "in" are Lucene stopwords; "_" splits like any non-alphanumeric.
    assert tokens == ["studi", "run", "dog", "cat", "2024"]


def test_tokenize_keeps_non_ascii_letters_in_words() -> None:
    assert Bm25Encoder().tokenize("Café naïve") == ["café", "naïv"]


def test_language_none_keeps_words_unstemmed() -> None:
    assert Bm25Encoder(language="none").tokenize("The Studies of RUNNING dogs") == ["studies", "running", "dogs"]


def test_stopwords_are_lucenes_english_set_and_replaceable() -> None:
    assert {"the", "a", "is", "with", "into"} <= ENGLISH_STOPWORDS
    assert "studies" not in ENGLISH_STOPWORDS
    assert Bm25Encoder(stopwords=frozenset()).tokenize("the cat") == ["the", "cat"]
    assert Bm25Encoder().tokenize("The is a") == []


@pytest.mark.parametrize(("k1", "b"), [(-0.1, 0.75), (1.2, -0.01), (1.2, 1.01)])
def test_invalid_parameters_raise(k1: float, b: float) -> None:
    with pytest.raises(ValueError, match=r"k1 >= 0 and 0 <= b <= 1"):
        Bm25Encoder(k1=k1, b=b)


@pytest.mark.parametrize(("k1", "b"), [(0.0, 0.0), (1.2, 1.0), (2.0, 0.5)])
def test_boundary_parameters_are_accepted(k1: float, b: float) -> None:
    assert Bm25Encoder(k1=k1, b=b).tokenize("words") == ["word"]


# -- vectors ---------------------------------------------------------------------------------


def test_document_weights_follow_the_bm25_formula() -> None:
    # |d| = 3, avgdl = 4, k1 = 1.2, b = 0.75:
    # norm = k1 * (1 - b + b * |d| / avgdl) = 1.2 * (0.25 + 0.5625) = 0.975
    # apple (tf 2): 2 * 2.2 / (2 + 0.975);  banana (tf 1): 1 * 2.2 / (1 + 0.975)
    vector = PLAIN.encode_document("apple Apple banana", avgdl=4.0)
    assert weights(vector) == pytest.approx({term_id("apple"): 4.4 / 2.975, term_id("banana"): 2.2 / 1.975})
    assert weights(vector)[term_id("apple")] == pytest.approx(1.4789916, abs=1e-7)


def test_document_weights_without_length_normalisation_or_saturation() -> None:
    short, long = "apple", "apple pear plum fig kiwi lime"
    no_norm = Bm25Encoder(language="none", stopwords=frozenset(), b=0.0)
    # b = 0: the length is ignored, tf * (k1 + 1) / (tf + k1) = 2.2 / 2.2 for tf = 1.
    assert weights(no_norm.encode_document(short, 2.0))[term_id("apple")] == pytest.approx(1.0)
    assert weights(no_norm.encode_document(long, 2.0))[term_id("apple")] == pytest.approx(1.0)
    # k1 = 0: every present term weighs 1, however often it occurs.
    binary = Bm25Encoder(language="none", stopwords=frozenset(), k1=0.0)
    assert set(weights(binary.encode_document("fig fig fig kiwi", 1.0)).values()) == {1.0}
    # With the defaults a longer document weighs the same term less.
    assert (
        weights(PLAIN.encode_document(long, 3.5))[term_id("apple")]
        < weights(PLAIN.encode_document(short, 3.5))[term_id("apple")]
    )


def test_encode_documents_matches_encode_document() -> None:
    texts = ["Emperor penguins breed in winter", "Penguins swim", ""]
    encoder = Bm25Encoder()
    assert encoder.encode_documents(texts, 3.0) == [encoder.encode_document(t, 3.0) for t in texts]
    assert len(encoder.encode_document("", 3.0)) == 0


def test_lengths_and_average_length() -> None:
    encoder = Bm25Encoder()
    assert encoder.document_length("The penguins of the Antarctic") == 2
    assert encoder.average_length(["penguins swim fast", "the ice"]) == 2.0
    assert encoder.average_length([]) == 1.0


def test_query_vector_holds_term_counts() -> None:
    vector = Bm25Encoder().encode_query("Penguin penguins and the penguin's ice")
    # "penguin's" splits into "penguin" and "s"; all three penguin forms stem to "penguin".
    assert weights(vector) == {term_id("penguin"): 3.0, term_id("s"): 1.0, term_id("ice"): 1.0}
    assert len(Bm25Encoder().encode_query("the and of")) == 0


def test_term_ids_are_stable_32_bit_hashes() -> None:
    # Pinned values: a changed hash would silently break every stored collection.
    assert term_id("apple") == zlib.crc32(b"apple") == 2838417488
    assert term_id("appl") == 2635363247
    ids = [term_id(f"term{i}") for i in range(1000)]
    assert all(0 <= i < 2**32 for i in ids)
    assert len(set(ids)) == len(ids)
    assert term_id("café") == zlib.crc32("café".encode())


# -- congruence with textbook BM25 -----------------------------------------------------------

VOCABULARY = [
    *("river", "rivers", "mountain", "forest", "forests", "lake", "valley", "glacier", "glaciers"),
    *("desert", "island", "islands", "volcano", "storm", "storms", "canyon", "meadow"),
]


def make_corpus() -> list[str]:
    rng = random.Random(20240611)
    texts = [
        "The river runs through the valley into the lake.",
        "Glaciers carved the valley; a glacier still feeds the river.",
        "A volcano on the island.",
    ]
    while len(texts) < 30:
        length = rng.randint(2, 14)
        # Skewed choice, so some terms are common and some rare: IDF matters.
        words = rng.choices(VOCABULARY, weights=[1 / (i + 1) for i in range(len(VOCABULARY))], k=length)
        texts.append(" ".join(words).capitalize() + ".")
    return texts


def textbook_bm25(query: list[str], documents: list[list[str]], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Robertson/Lucene BM25 with the IDF Qdrant's modifier uses: ln((N - n + 0.5) / (n + 0.5) + 1)."""
    n_docs = len(documents)
    avgdl = sum(len(d) for d in documents) / n_docs
    scores = []
    for doc in documents:
        tf = Counter(doc)
        score = 0.0
        for term, qtf in Counter(query).items():
            if tf[term] == 0:
                continue
            n = sum(1 for d in documents if term in d)
            idf = math.log((n_docs - n + 0.5) / (n + 0.5) + 1)
            score += qtf * idf * tf[term] * (k1 + 1) / (tf[term] + k1 * (1 - b + b * len(doc) / avgdl))
        scores.append(score)
    return scores


@pytest.mark.parametrize(
    "query",
    [
        "river",
        "glacier valley",
        "volcanoes on islands",
        "storm storm canyon",  # a repeated query term counts twice
        "river lake forest mountain desert meadow",
        "penguin river",  # a term no document has adds nothing
    ],
)
def test_qdrant_sparse_scores_equal_textbook_bm25(store: QdrantStore, query: str) -> None:
    encoder = Bm25Encoder()
    texts = make_corpus()
    tokens = [encoder.tokenize(t) for t in texts]
    assert all(tokens), "every document must have terms, or Qdrant's N differs from the textbook's"
    assert len({term_id(t) for doc in tokens for t in doc}) == len({t for doc in tokens for t in doc})

    avgdl = encoder.average_length(texts)
    store.create_source("bm25", description="", dimension=2, embedding_model="none", bm25_avgdl=avgdl)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(len(texts))]
    store.upsert(
        "bm25",
        [
            Point(id_, [1.0, 0.0], vector, {"i": i})
            for i, (id_, vector) in enumerate(zip(ids, encoder.encode_documents(texts, avgdl), strict=True))
        ],
    )

    expected = textbook_bm25(encoder.tokenize(query), tokens)
    hits = store.search("bm25", sparse=encoder.encode_query(query), limit=len(texts))

    matching = {ids[i]: s for i, s in enumerate(expected) if s > 0}
    assert matching, "the query must match something"
    assert {h.id for h in hits} == set(matching)
    for hit in hits:
        assert hit.score == pytest.approx(matching[hit.id], abs=1e-4)
    # Same ranking: the textbook scores, read in Qdrant's order, never increase.
    in_hit_order = [matching[h.id] for h in hits]
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(in_hit_order))
    if len({round(s, 6) for s in matching.values()}) == len(matching):  # no ties: the order is unique
        assert [h.id for h in hits] == sorted(matching, key=lambda i: -matching[i])
