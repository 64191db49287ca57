"""The RAG graph without a model: short answers that lead with the asked span, abstentions when
the evidence lacks it, comparisons, a second hop through the bridge, and the ranking over rounds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agents.rag_agent import RagAgent
from agents.testing import FakeEmbeddings
from graphs.budget import Budget
from graphs.heuristic import HeuristicAnalyzer, HeuristicAnswerer, HeuristicGrader, _span_in
from graphs.rag import _fuse_rounds
from tools.extractive import ScoredSentence
from tools.ingest import Ingestor
from tools.ingest.loaders import Document
from tools.retrieval import RetrievedChunk, Retriever
from tools.store import QdrantStore

NOTES = [
    ("lumen", "Lumen bridge", "The Lumen bridge opened in 1902 and was designed by Ada Vell."),
    ("vell", "Ada Vell", "Ada Vell was an engineer; she was born in 1889 in Tarn."),
    ("tarn", "Tarn tower", "The Tarn tower was finished in 1931 and is 82 metres tall."),
    ("reef", "Coral reef", "Coral reefs are built by colonies of tiny animals called polyps."),
]


def chunk(doc_id: str, title: str, text: str) -> RetrievedChunk:
    return RetrievedChunk(id=f"notes/{doc_id}", score=1.0, source="notes", doc_id=doc_id, title=title, text=text)


EVIDENCE = [chunk(*row) for row in NOTES]


@pytest.fixture
def agent() -> Iterator[RagAgent]:
    store = QdrantStore(":memory:")
    embeddings = FakeEmbeddings()
    docs = [Document(doc_id=i, text=text, title=title, path=f"/notes/{i}.md") for i, title, text in NOTES]
    Ingestor(store, embeddings).ingest_documents(docs, "notes", description="Notes on bridges and towers")
    yield RagAgent(Retriever(store=store, embeddings=embeddings, k=3))
    store.close()


@pytest.mark.parametrize(
    ("question", "short"),
    [
        ("When did the Lumen bridge open?", "1902"),
        ("Who designed the Lumen bridge?", "Ada Vell"),
        ("How tall is the Tarn tower?", "82 metres"),
        ("Which is older, the Lumen bridge or the Tarn tower?", "the Lumen bridge"),
        ("Which is younger, the Lumen bridge or the Tarn tower?", "the Tarn tower"),
    ],
)
def test_answers_lead_with_the_asked_span(question: str, short: str) -> None:
    draft = HeuristicAnswerer().answer(question, EVIDENCE, [], Budget())
    assert not draft.abstained
    assert draft.short == short
    assert draft.text.startswith(f"{short}\n\n")
    assert "[1]" in draft.text  # then the supporting sentences, cited


def test_no_span_of_the_asked_kind_is_an_abstention_with_the_partial() -> None:
    draft = HeuristicAnswerer().answer("When were coral reefs first built by polyps?", EVIDENCE, [], Budget())
    assert draft.abstained
    assert draft.text.startswith("I found no date")
    assert "polyps" in draft.partial
    assert draft.citations  # the quoted passages stay cited


def test_an_undecided_yes_no_question_abstains() -> None:
    draft = HeuristicAnswerer().answer("Is the Lumen bridge painted red?", EVIDENCE, [], Budget())
    assert draft.abstained
    assert "yes or no" in draft.text


def test_a_description_question_is_answered_with_sentences() -> None:
    draft = HeuristicAnswerer().answer("What are coral reefs built by?", EVIDENCE[3:], [], Budget())
    assert not draft.abstained
    assert draft.short == ""
    assert "polyps" in draft.text


def test_comparisons_search_each_side() -> None:
    plan = HeuristicAnalyzer().analyze("Which is older, the Lumen bridge or the Tarn tower?", [], Budget())
    assert any(q.startswith("the Lumen bridge") for q in plan.queries)
    assert any(q.startswith("the Tarn tower") for q in plan.queries)
    assert plan.hops == 2


def test_the_agent_takes_a_second_hop_and_answers_short(agent: RagAgent) -> None:
    result = agent.invoke("Where was the designer of the Lumen bridge born?")
    grades = [s for s in result.steps if s["node"] == "grade"]
    assert len(grades) == 2  # a planned second hop, though the first round covers the words
    assert result.exit_reason == "answered"
    assert result.short_answer == "Tarn"
    assert result.answer.startswith("Tarn\n\n")
    assert "notes/vell" in result.retrieved[:3]  # the bridge's document ranks beside the first hop's


class _ScriptedHops(Retriever):
    """The first hop's searches (they ask after the designer) find the Lumen bridge and ten more
    notes on it; the second hop's find Ada Vell's passage first."""

    def search(self, query: str, *, k: int | None = None, sources: Any = None, **_: Any) -> list[RetrievedChunk]:
        vell = chunk(*NOTES[1])
        if "designer" not in query:
            return [vell, chunk(*NOTES[0])]
        notes = [
            chunk(f"n{i}", f"Lumen notes {i}", f"The Lumen bridge, note {i}: its designer drew it.") for i in range(10)
        ]
        return [chunk(*NOTES[0]), *notes]


def test_a_second_hops_passage_takes_a_place_in_the_evidence_from_the_first_hops() -> None:
    """The first round fills every kept place with passages on the Lumen bridge; the bridge's own
    passage, found in the second round, still enters the evidence (ranked by both rounds fused,
    not queued after the first round's) and answers."""
    store = QdrantStore(":memory:")
    embeddings = FakeEmbeddings()
    docs = [Document(doc_id=i, text=text, title=title, path=f"/notes/{i}.md") for i, title, text in NOTES]
    Ingestor(store, embeddings).ingest_documents(docs, "notes", description="Notes on bridges and towers")
    retriever = _ScriptedHops(store=store, embeddings=embeddings, k=10)
    result = RagAgent(retriever).invoke("Where was the designer of the Lumen bridge born?")
    store.close()
    grades = [s for s in result.steps if s["node"] == "grade"]
    assert grades[0]["kept"] == 8  # the first round alone fills the evidence
    assert "vell" in [c["doc_id"] for c in result.evidence]
    assert (result.exit_reason, result.short_answer) == ("answered", "Tarn")


def test_the_agent_abstains_with_the_partial(agent: RagAgent) -> None:
    result = agent.invoke("When was the coral reef discovered?")
    assert result.exit_reason == "abstained"
    assert result.short_answer == ""
    assert result.partial_answer  # what it did find
    assert result.partial_answer in result.answer


def test_rounds_are_fused_not_appended() -> None:
    first = [f"d{i}" for i in range(12)]
    second = ["bridge", "d0", "x"]
    fused = _fuse_rounds([first, second], 10)
    assert fused[:3] == ["d0", "bridge", "d1"]  # the second hop's best is near the top, not at 13
    assert set(fused) == set(first) | set(second)


def test_passages_about_something_else_are_not_an_answer(real_embeddings: Any) -> None:
    answerer = HeuristicAnswerer(real_embeddings)  # the bundled model: its on-topic cosine applies
    assert (answerer.min_similarity, answerer.min_relevance) == (0.4, 0.6)
    off_topic = answerer.answer("When was the old dynasty finished?", EVIDENCE, [], Budget())  # shares "finished"
    assert off_topic.abstained
    assert "not about" in off_topic.text
    on_topic = answerer.answer("When did the Lumen bridge open?", EVIDENCE, [], Budget())
    assert not on_topic.abstained
    assert on_topic.short == "1902"
    assert HeuristicAnswerer(FakeEmbeddings()).min_similarity is None  # another model: no threshold


def test_the_span_may_come_from_a_sentence_below_the_best_one() -> None:
    evidence = [
        chunk("opening", "Bridges of Tarn", "The Lumen bridge opened in 1902 after a long delay."),
        chunk("lumen", "Lumen bridge", "The Lumen bridge is a stone arch. It was designed by Ada Vell, an engineer."),
    ]
    draft = HeuristicAnswerer().answer("Who designed the Lumen bridge that opened in 1902?", evidence, [], Budget())
    assert draft.short == "Ada Vell"
    assert "designed by Ada Vell" in draft.text  # the span's own sentence is quoted, and cited
    assert "notes/lumen" in draft.citations


def test_a_title_is_the_name_a_sentence_opens_with() -> None:
    evidence = [chunk("anim", "Animorphs (books)", "Animorphs is a science fantasy series of young adult books.")]
    draft = HeuristicAnswerer().answer(
        "What science fantasy series was written for young adults?", evidence, [], Budget()
    )
    assert not draft.abstained
    assert draft.short == "Animorphs"


def test_a_close_meaning_with_few_shared_words_is_declined() -> None:
    question = "When did the Lumen bridge open?"
    strict = HeuristicAnswerer(FakeEmbeddings(), min_similarity=-1.0, min_relevance=2.0)  # above any cosine + share
    declined = strict.answer(question, EVIDENCE, [], Budget())
    assert declined.abstained
    assert "relevance" in declined.text
    assert declined.partial  # what was found stays quoted
    lenient = HeuristicAnswerer(FakeEmbeddings(), min_similarity=-1.0, min_relevance=0.0)
    assert lenient.answer(question, EVIDENCE, [], Budget()).short == "1902"


def test_a_second_hop_reads_the_bridge_passage_for_the_rest_of_the_question() -> None:
    evidence = [
        chunk("lumen", "Lumen bridge", "The Lumen bridge was designed by Ada Vell. It spans the river in Kestrel."),
        chunk("vell", "Ada Vell", "Ada Vell is an engineer based in Tarn City."),
    ]
    question = "The designer of the Lumen bridge is based in what city?"
    draft = HeuristicAnswerer().answer(question, evidence, [], Budget())
    assert draft.short == "Tarn City"  # not the first hop's town, nor the bridge "Ada Vell"
    assert "based in Tarn City" in draft.text
    assert "designed by Ada Vell" in draft.text  # the chain: both hops quoted
    assert set(draft.citations) == {"notes/lumen", "notes/vell"}


def test_a_bridge_named_elsewhere_in_the_first_passage_may_be_the_answer() -> None:
    rows = [
        ("Lumen castle", "Lumen castle is a medieval fortress in the village of Lumen. Its lands reach Vell Sands."),
        ("Vell Sands", "Vell Sands is a coastal area of beach and forest."),
        ("Tarn", "Tarn is a town with a harbour and a coastal path."),
    ]
    draft = _ask("A medieval fortress in the village of Lumen borders what coastal area?", rows)
    # The best sentence names no area ("what coastal *area*?"), so the castle is not the answer;
    # the bridge, named in the castle's second sentence, is one.
    assert draft.short == "Vell Sands"
    assert "coastal area of beach" in draft.text


def test_another_chunk_of_the_same_document_is_no_bridge() -> None:
    rows = [  # two chunks of one article, both titled with its name (as SQuAD's are)
        ("Huguenot", "Fort Coligny was destroyed in 1560. It had been built by Huguenot colonists."),
        ("Huguenot", "The Portuguese navy destroyed a Huguenot church in 1702."),
    ]
    draft = _ask("In what year was Fort Coligny destroyed by the Portuguese navy?", rows)
    assert draft.short == "1560"


def test_a_figure_said_with_what_is_counted_is_read_outside_the_best_sentences() -> None:
    question = "How many copies of Ada Vell's story about the Lumen bridge sold?"
    texts = [
        "Ada Vell's story about the Lumen bridge appeared in her first book.",
        "Ada Vell's story about the Lumen bridge is her best known work.",
        "It ran on the radio in 25 parts.",
        "Ada Vell wrote the story about the Lumen bridge in Tarn.",
        "Her books have sold more than 250 million copies worldwide.",
    ]
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]  # the figure of copies is fifth: outside the few best
    ranked = [
        ScoredSentence(text, rank=0, position=i, score=score, lexical=score / 2, typed=False)
        for i, (text, score) in enumerate(zip(texts, scores, strict=True))
    ]
    assert _span_in(question, "number", ranked, ["Ada Vell"], pool=3) == ("250 million", ranked[4])
    # Where nothing counted is said, the best sentences alone are searched.
    assert _span_in(question, "number", ranked[:4], ["Ada Vell"], pool=3) == ("25 parts", ranked[2])


def test_the_grader_keeps_the_bridge_passage_the_first_hop_names() -> None:
    question = "What government position was held by the woman who portrayed Corliss Archer in the film Kiss and Tell?"
    film = chunk("film", "Kiss and Tell (film)", "Kiss and Tell is a film starring Shirley Temple as Corliss Archer.")
    others = [chunk(f"o{i}", f"Corliss Archer {i}", f"Corliss Archer in the film series, part {i}.") for i in range(8)]
    temple = chunk("temple", "Shirley Temple", "Shirley Temple was an actress who served as Chief of Protocol.")
    named_in_question = chunk("tell", "Tell", "Tell is a surname.")  # the question says it: no bridge
    grading = HeuristicGrader().grade(question, [], [film, *others, named_in_question, temple], Budget())
    kept = [c.doc_id for c in grading.kept]
    assert len(kept) == 8
    assert kept[:2] == ["film", "temple"]  # after the passage that names it, in place of the last kept
    assert "tell" not in kept
    # Without a passage naming it, a passage with few of the question's words stays out.
    assert "temple" not in [c.doc_id for c in HeuristicGrader().grade(question, [], [*others, temple], Budget()).kept]


def test_a_pronoun_in_a_lead_passage_names_its_title() -> None:
    question = "What airport is the largest airport in the New England region?"
    # The lead's first sentence shares no word with the question: only "It" can name the answer.
    lead = [("Kestrel Field", "Kestrel Field opened in 1923. It is the largest airport in the New England region.")]
    assert _ask(question, lead).short == "Kestrel Field"
    # A chunk that does not open with its title: its "It" may be anything, so no name is found.
    middle = [("Kestrel Field", "Many towns have fields. It is the largest airport in the New England region.")]
    assert _ask(question, middle).abstained


def test_a_choice_is_one_of_its_options_or_declined() -> None:
    evidence = [
        chunk("vell", "Ada Vell", "Ada Vell was an engineer from Tarn."),
        chunk("lin", "Bo Lin", "Bo Lin was an engineer from Kestrel."),
    ]
    answerer = HeuristicAnswerer()
    assert (
        answerer.answer("Which engineer came from Tarn, Ada Vell or Bo Lin?", evidence, [], Budget()).short
        == "Ada Vell"
    )
    undecided = answerer.answer("Which engineer was taller, Ada Vell or Bo Lin?", evidence, [], Budget())
    assert undecided.abstained  # nothing says: no option, and never another name
    assert "which one" in undecided.text


def test_a_choice_whose_options_cannot_be_read_is_declined() -> None:
    question = "What is the year of the event that came first, the Lumen bridge opened, or the Tarn tower was finished?"
    draft = HeuristicAnswerer().answer(question, EVIDENCE, [], Budget())
    assert draft.abstained
    assert "which one" in draft.text


def test_the_quoted_sentence_of_the_asked_kind_answers_though_it_shares_no_word(real_embeddings: Any) -> None:
    text = (
        "Apollo 11 was the first crewed mission to land on the Moon. The rocket lifted off on 16 July 1969. "
        "The lunar module Eagle touched down in the Sea of Tranquility on 20 July 1969."
    )
    evidence = [chunk("apollo", "Apollo 11", text)]
    question = "When did Apollo 11 land on the Moon?"
    draft = HeuristicAnswerer(real_embeddings).answer(question, evidence, [], Budget())
    assert not draft.abstained
    assert draft.short == "20 July 1969"  # the sentence closest in meaning: touching down, not lifting off
    assert "touched down" in draft.text
    # Without a model's similarity nothing ties a sentence that shares no word to the question.
    assert HeuristicAnswerer().answer(question, evidence, [], Budget()).abstained


def _ask(question: str, rows: list[tuple[str, str]], embeddings: Any = None) -> Any:
    evidence = [chunk(f"d{i}", title, text) for i, (title, text) in enumerate(rows)]
    return HeuristicAnswerer(embeddings).answer(question, evidence, [], Budget())


@pytest.mark.parametrize(
    ("question", "rows"),
    [
        # a choice by properties that relate the options to something else: words in common do not decide
        ("Which town is closer to Paris, Lyon or Rouen?",
         [("Lyon", "Lyon is a city in France, 460 km from Paris."),
          ("Rouen", "Rouen is a city 135 km from the capital.")]),
        # a negated property
        ("Was either Ada Vell or Bo Lin an architect?",
         [("Ada Vell", "Ada Vell was an engineer, not an architect."), ("Bo Lin", "Bo Lin was a painter.")]),
        # an option without a passage of its own
        ("Where was Ada Vell born, Tarn or Kestrel?", [("Ada Vell", "Ada Vell was an engineer born in Tarn.")]),
        # a span that shares a word with an option is not that option
        ("Which was designed by Ada Vell, the Lumen bridge or the Tarn tower?",
         [("Lumen bridge", "The Lumen bridge was built by Bo Lin."),
          ("Tarn tower", "The Tarn tower was built by Bo Lin."),
          ("Lumen Street station", "Ada Vell designed the Lumen Street station.")]),
        # a year is no month; a month that is a name is none either
        ("In what month was the Lumen bridge opened?",
         [("Lumen bridge", "The Lumen bridge was opened by April Vell in 1902.")]),
    ],
)  # fmt: skip
def test_what_the_evidence_does_not_decide_is_declined(question: str, rows: list[tuple[str, str]]) -> None:
    assert _ask(question, rows).abstained


def test_a_number_word_inside_a_bigger_figure_does_not_order_a_comparison() -> None:
    rows = [
        ("Tarn union", "The Tarn union is one of the biggest unions and has 5000 members."),
        ("Kestrel union", "The Kestrel union has 300 members."),
    ]
    assert _ask("Which union has more members, the Tarn union or the Kestrel union?", rows).short == "the Tarn union"


@pytest.mark.parametrize(
    ("question", "rows"),
    [
        ("When did the Lumen bridge open to traffic?",
         [("Lumen bridge", "The Lumen bridge opened in 1902 and was designed by Ada Vell."),
          ("Ada Vell", "Ada Vell was injured in traffic in 1950.")]),
        # "year" is never beside a year: its absence does not send the answer on a hop
        ("In what year did the Lumen bridge open?",
         [("Lumen bridge", "The Lumen bridge, designed by Ada Vell, opened in 1902."),
          ("Ada Vell", "Ada Vell was born in 1861, the year her family came to open a mill in Tarn.")]),
    ],
)  # fmt: skip
def test_the_best_sentence_that_answers_itself_takes_no_second_hop(question: str, rows: list[tuple[str, str]]) -> None:
    assert _ask(question, rows).short == "1902"


def test_a_quoted_sentence_far_from_the_question_in_meaning_gives_no_span(real_embeddings: Any) -> None:
    rows = [("Lumen bridge", "The Lumen bridge's designer is unknown. The mayor at the time was Bo Lin.")]
    assert _ask("Who designed the Lumen bridge?", rows, real_embeddings).abstained


def test_a_choice_is_read_whatever_the_case_of_or() -> None:
    rows = [("Ada Vell", "Ada Vell was an engineer from Tarn."), ("Bo Lin", "Bo Lin was an engineer from Kestrel.")]
    assert _ask("Which engineer came from Kestrel, Ada Vell OR Bo Lin?", rows).short == "Bo Lin"


def test_or_inside_a_title_is_no_choice() -> None:
    from tools.questions import read_question

    assert read_question("Who sang Now or Never?").form == "lookup"
    assert read_question("Which came first, Dinosaur or McFarland?").form == "comparison"


def test_a_span_that_fits_both_options_names_neither() -> None:
    rows = [("Ada Smith", "Ada Smith was a painter."), ("Bo Smith", "Bo Smith was a painter too.")]
    draft = _ask("Which painter was born first, Ada Smith or Bo Smith?", rows)
    assert draft.abstained  # no years: undecided, and "Smith" is not one of them


def test_what_two_people_have_in_common_cites_a_passage_of_each(real_embeddings: Any) -> None:
    evidence = [
        chunk(
            "vell", "Ada Vell", "Ada Vell (born 1861) was a Danish engineer and painter. She designed the Lumen bridge."
        ),
        chunk("lin", "Bo Lin", "Bo Lin was a Norwegian painter. He lived in Tarn."),
        chunk("reef", "Coral reef", "Coral reefs are built by colonies of tiny animals called polyps."),
    ]
    draft = HeuristicAnswerer(real_embeddings).answer(
        "What occupation do Ada Vell and Bo Lin have in common?", evidence, [], Budget()
    )
    assert (draft.abstained, draft.short) == (False, "painter")
    assert draft.citations == ["notes/vell", "notes/lin"]  # the sentence of each that says it
    assert "Danish engineer and painter" in draft.text
    assert "Norwegian painter" in draft.text
    # Without a passage about one of them there is nothing to compare: no "in common" answer.
    alone = HeuristicAnswerer(real_embeddings).answer(
        "What occupation do Ada Vell and Cy Moor have in common?", evidence, [], Budget()
    )
    assert alone.abstained
    assert "Cy Moor" in alone.text
