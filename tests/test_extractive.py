"""Extractive answers: sentence choice, answer types, citations, abstention."""

from __future__ import annotations

from agents.testing import FakeEmbeddings
from tools.extractive import extractive_answer, split_sentences
from tools.retrieval import RetrievedChunk


def chunk(cid: str, text: str, title: str = "T") -> RetrievedChunk:
    return RetrievedChunk(id=cid, score=1.0, source="kb", doc_id=cid, title=title, text=text)


APOLLO = chunk(
    "apollo",
    "Apollo 11 was the first crewed mission to land on the Moon. The Saturn V lifted off from Florida.\n\n"
    "The lunar module Eagle touched down in the Sea of Tranquility on 20 July 1969.",
)
BEES = chunk("bees", "Honey bees live in colonies. The waggle dance tells workers the direction of food.")


def test_split_sentences_on_punctuation_blank_lines_and_lists() -> None:
    text = "First one. Second one!\nStill second? Third\n\nFourth para\n- item one\n1. item two"
    assert split_sentences(text) == [
        "First one.",
        "Second one!",
        "Still second?",
        "Third",
        "Fourth para",
        "- item one",
        "1. item two",
    ]
    assert split_sentences("e.g. lower case stays. Done.") == ["e.g. lower case stays.", "Done."]


def test_best_sentence_is_quoted_with_its_citation() -> None:
    answer = extractive_answer("What does the waggle dance tell workers?", [APOLLO, BEES])
    assert not answer.abstained
    assert answer.text == "The waggle dance tells workers the direction of food [1]."
    assert answer.citations == [BEES]


def test_when_question_adds_the_sentence_with_a_date() -> None:
    answer = extractive_answer("When did Apollo 11 land on the Moon?", [APOLLO])
    assert "20 July 1969 [1]." in answer.text
    assert answer.text.startswith("Apollo 11 was the first crewed mission")


def test_citations_are_numbered_by_ranking_order() -> None:
    other = chunk("moon", "The Moon landing of Apollo 11 was watched by 650 million people.")
    answer = extractive_answer("Apollo 11 Moon landing", [APOLLO, other], max_sentences=2)
    assert answer.text == (
        "Apollo 11 was the first crewed mission to land on the Moon [1]. "
        "The Moon landing of Apollo 11 was watched by 650 million people [2]."
    )
    assert answer.citations == [APOLLO, other]


def test_abstains_without_shared_content_words() -> None:
    assert extractive_answer("zyxx quorble?", [APOLLO, BEES]).abstained
    assert extractive_answer("Apollo?", []).abstained
    assert extractive_answer("the of and?", [APOLLO]).abstained  # only stopwords
    answer = extractive_answer("zyxx?", [BEES])
    assert answer.citations == []
    assert "zyxx" in answer.text


def test_embeddings_break_lexical_ties() -> None:
    first = chunk("a", "Glaciers move slowly downhill under their own weight.")
    second = chunk("b", "Glaciers carve valleys; ice flows like a very thick river.")
    answer = extractive_answer(
        "How do glaciers flow like a river?", [first, second], embeddings=FakeEmbeddings(), max_sentences=1
    )
    assert answer.citations == [second]


def test_markdown_heading_lines_are_titles_not_sentences() -> None:
    text = "# The Kettle Lighthouse\nThe Kettle Lighthouse stands on Gannet Point.\n\n## History\nBuilt in 1850."
    assert split_sentences(text) == ["The Kettle Lighthouse stands on Gannet Point.", "Built in 1850."]
    # a hash inside prose, or one not followed by a space, is not a heading
    assert split_sentences("Use #hashtags. C# is fine.\n#1 pick") == ["Use #hashtags.", "C# is fine.", "#1 pick"]
