"""Reading a question without a model: its form, the kind of answer, spans of that kind, and the
signs that a sentence is about something else."""

from __future__ import annotations

import re

import pytest

from tools.questions import (
    SPAN_FIT,
    compare,
    counted_pattern,
    entities,
    find_spans,
    modifier_conflicts,
    plural_pattern,
    read_question,
    says,
    shared,
    span_scores,
    unmentioned,
    verb_terms,
)


@pytest.mark.parametrize(
    ("question", "form", "kind"),
    [
        ("What is the special magic number for walrus?", "lookup", "number"),
        ("When did the Lumen bridge open?", "lookup", "date"),
        ("In which town is the walrus archive kept?", "lookup", "place"),
        ("Who received the silver compass?", "lookup", "person"),
        ("What is the capital of France?", "lookup", "entity"),
        ("Where was the designer of the Lumen bridge born?", "chain", "place"),
        ("Where does the person who received the silver compass keep it?", "chain", "place"),
        ("Where would whoever got the brass key put it?", "chain", "place"),
        ("Which is older, the Lumen bridge or the Tarn tower?", "comparison", "entity"),
        ("Were Ada Vell and Bo Lin both architects?", "comparison", "yesno"),
        ("Summarise the essays in three sentences.", "unsupported", None),
        ("Why does the author think hackers resemble painters?", "unsupported", None),
        ("What overall tone does the writing take?", "unsupported", "entity"),
        ("Tell me something nice.", "unsupported", None),
        ("At what age did the workers retire?", "lookup", "number"),  # a measure, after a preposition
        ("What is the speed limit set to save fuel?", "lookup", "number"),
    ],
)
def test_forms_and_kinds(question: str, form: str, kind: str | None) -> None:
    read = read_question(question)
    assert (read.form, read.kind) == (form, kind)
    assert bool(read.reason) == (form == "unsupported")


@pytest.mark.parametrize(
    ("question", "op", "target"),
    [
        ("How many distinct vessels are recorded in the log?", "distinct", "vessels"),
        ("Count the unique species that were observed.", "distinct", "species"),
        ("How many different visitors appear in the log?", "distinct", "visitors"),
        ("List all the vessels recorded.", "list", "vessels"),
        ("Name every species observed.", "list", "species"),
        ("What are all the couriers mentioned in the records?", "list", "couriers"),
        ("Which vessel appears most often?", "most", "vessel"),
        ("Which courier comes up least often in the log?", "least", "courier"),
        ("How many crates were delivered in total?", "sum", "crates"),
        ("What is the total number of sacks received?", "sum", "sacks"),
        ("How many times did a courier deliver a parcel?", "count", "courier"),
    ],
)
def test_aggregate_questions(question: str, op: str, target: str) -> None:
    read = read_question(question)
    assert read.form == "aggregate"
    assert read.aggregate is not None
    assert (read.aggregate.op, read.aggregate.target) == (op, target)


def test_a_plain_how_many_is_a_lookup() -> None:
    assert read_question("How many days of parental leave do fathers get?").form == "lookup"


@pytest.mark.parametrize(
    ("sentence", "kind", "question", "spans"),
    [
        ("Ada Vell, an engineer, was born in 1889 in Tarn.", "place", "Where was she born?", ["Tarn"]),
        ("Orla Fenn keeps her things in the attic above the mill.", "place", "Where?", ["the attic above the mill"]),
        ("It opened on 12 March 1998 after a delay.", "date", "When did it open?", ["12 March 1998"]),
        ("The special magic number for walrus is 7251904.", "number", "What is the magic number?", ["7251904"]),
        ("Records show that the vault combination is 4471.", "entity", "What is the combination?", ["4471"]),
        ("The prize went to Nadia Hartigan of Tarn.", "person", "Who won the prize?", ["Nadia Hartigan of Tarn"]),
        ("The bridge opened in 1902.", "date", "When did the bridge open in 1902?", []),  # already asked
        ("It is a fine bridge.", None, "Is it fine?", []),
    ],
)
def test_spans(sentence: str, kind: str | None, question: str, spans: list[str]) -> None:
    assert find_spans(sentence, kind, question) == spans  # type: ignore[arg-type]


def test_entities_skip_capitalised_openers() -> None:
    assert entities("After the war, the compass went to Orla Fenn of Harrow Bank in March.") == [
        "Orla Fenn of Harrow Bank",
        "March",
    ]
    assert entities("Records show nothing.") == []


def test_near_miss_and_wording() -> None:
    assert modifier_conflicts("How many families does the teapot shelter feed?", "The walrus shelter feeds 40.") == [
        "teapot"
    ]
    assert modifier_conflicts("What does the walrus shelter feed?", "The walrus shelter feeds 40.") == []
    assert "forg" in verb_terms("Who forged the falcon bell?")


def test_plural_pattern() -> None:
    for word, hits in [("vessels", ["vessel", "Vessels"]), ("species", ["species"]), ("entry", ["entries"])]:
        assert all(re.search(plural_pattern(word), h, re.I) for h in hits)
    assert not re.search(plural_pattern("vessel"), "a vesselful", re.I)


def test_a_sentence_subject_fits_by_what_the_sentence_says_of_it() -> None:
    scores = span_scores(
        "Ada Vell is a British engineer who designed the Lumen bridge.", "person", "Who designed the bridge?"
    )
    assert max(scores, key=lambda s: scores[s]) == "Ada Vell"  # the subject
    assert "British" not in scores  # a nationality answers no "who?"


@pytest.mark.parametrize(
    ("sentence", "kind", "question", "left_out"),
    [
        ("Ada Vell was born in Bergen on a Monday in March.", "person", "Who was born in Bergen?", "Monday"),
        ("The prize was given in Tarn to Ada Vell.", "person", "Who was given the prize?", "Tarn"),
        ("Tarn is an American city near Lumen.", "entity", "Tarn is near what city?", "American"),
    ],
)
def test_spans_of_the_wrong_type_are_no_candidates(sentence: str, kind: str, question: str, left_out: str) -> None:
    assert left_out not in span_scores(sentence, kind, question)  # type: ignore[arg-type]


def test_a_one_word_subject_is_a_name_when_it_is_the_passage_title() -> None:
    sentence = "Animorphs is a science fantasy series of young adult books."
    question = "What science fantasy series was written for young adults?"
    assert "Animorphs" not in span_scores(sentence, "entity", question)  # capitalised by position only
    assert span_scores(sentence, "entity", question, subject="Animorphs")["Animorphs"] > 0


def test_a_comparison_reads_the_passage_titled_with_the_option_first() -> None:
    passages = [
        ("Kenton Bo Lin", "Kenton Bo Lin (born 1999) is a footballer."),  # titled with the option's words too
        ("Ada Vell", "Ada Vell (born 1970) is an engineer."),
        ("Bo Lin", "Bo Lin (born 1965) is a photographer."),
    ]
    assert compare("Who is older, Ada Vell or Bo Lin?", passages) == "Bo Lin"


@pytest.mark.parametrize(
    ("sentence", "kind", "question", "best"),
    [
        # "by whom?": the name after "by", not the sentence's subject
        (
            "Winner is a boy band formed in 2013 by Yellow Gate Records.",
            "person",
            "The band was formed by whom?",
            "Yellow Gate Records",
        ),
        # a nationality is asked: the adjective is the answer
        (
            "Sir Edmund Leach was a British social anthropologist.",
            "entity",
            "What nationality was the anthropologist Edmund Leach?",
            "British",
        ),
        # ... a word of the closed list, not any word ending like one ("Catholic", "Icelandic")
        (
            "The painter Eric met was a Catholic, and Danish by birth.",
            "entity",
            "What nationality was the painter Eric met?",
            "Danish",
        ),
        # "how many countries": the figure before "countries", not "One" opening the sentence
        (
            "One of the largest firms, it has operations in more than 70 countries.",
            "number",
            "The firm has operations in how many countries?",
            "70",
        ),
        # a named place beats a common-noun phrase
        (
            "The mall lies in the unincorporated area in Fairfax County, Virginia.",
            "place",
            "The mall is located in what county?",
            "Fairfax County",
        ),
        # a birth is asked: the date after "born"
        (
            "Paul Manafort (born April 1, 1949) joined the campaign in 2016.",
            "date",
            "When was the campaign's consultant born?",
            "April 1, 1949",
        ),
        # ... or the first date of a life's span, and its year alone for "which year?"
        (
            "George Abbott (June 25, 1887 \u2013 January 31, 1995) was a playwright.",
            "date",
            "The play is by a playwright born in which year?",
            "1887",
        ),
        # a death is asked: the span's last date
        (
            "George Abbott (June 25, 1887 \u2013 January 31, 1995) was a playwright.",
            "date",
            "When did the playwright die?",
            "January 31, 1995",
        ),
        # "in what" inside a question asks for what follows "in"
        (
            "Bishop Gorman High School is a private school located in Summerlin, Nevada.",
            "entity",
            "The athlete went to the high school located in what Nevada city?",
            "Summerlin",
        ),
    ],
)
def test_span_rules(sentence: str, kind: str, question: str, best: str) -> None:
    scores = span_scores(sentence, kind, question)  # type: ignore[arg-type]
    assert max(scores, key=lambda s: scores[s]) == best


def test_a_year_or_a_figure_is_not_what_its_sentence_is_about() -> None:
    # A name opening a sentence is fitted by the question words after it; a year is not.
    assert span_scores("1999 is the year the bridge opened.", "date", "When did the bridge open?") == {"1999": 0.0}
    # A year-like figure is seldom a count; the figure before what is counted is.
    assert span_scores("It opened in 1849 with 300 seats.", "number", "How many seats does it have?") == {
        "300": SPAN_FIT["counted"],
        "1849": SPAN_FIT["year_count"],
    }


@pytest.mark.parametrize(
    ("question", "counted"),
    [
        ("How many seats does it have?", ["seats"]),  # not "does"
        ("How many studio albums did she release?", ["studio", "albums"]),
        ("How many people live there?", ["people", "live"]),
        ("How many did they sell?", []),
    ],
)
def test_what_how_many_counts(question: str, counted: list[str]) -> None:
    pattern = counted_pattern(question)
    words = ("seats", "studio", "albums", "people", "live", "does", "they")
    assert [w for w in words if pattern and re.search(pattern, w)] == counted


def test_what_year_asks_for_the_year_of_a_full_date_and_keeps_a_decade() -> None:
    assert find_spans("He was born on June 25, 1887 in Tarn.", "date", "In what year was he born?") == ["1887"]
    assert find_spans("Prices fell in the 1980s.", "date", "Which year did prices fall?") == ["1980s"]
    assert find_spans("He was born on June 25, 1887.", "date", "When was he born?") == ["June 25, 1887"]


def test_a_place_phrase_stops_before_a_named_place() -> None:
    spans = find_spans("It stands in the old quarter in Fairfax County.", "place", "Where does it stand?")
    assert spans[0] == "Fairfax County"
    assert "the old quarter" in spans


def test_the_name_inside_a_place_phrase_answers_for_its_kind() -> None:
    sentence = "The town lies on the banks of the Richmond River."
    assert "Richmond River" in find_spans(sentence, "place", "The town is on the banks of which river?")
    assert "Richmond River" not in find_spans(sentence, "place", "Where is the town?")


def test_a_month_alone_answers_in_what_month() -> None:
    sentence = "The festival takes place in the months of March and April every year."
    assert find_spans(sentence, "date", "In what month is the festival held?")[0] == "March and April"
    assert find_spans(sentence, "date", "When was the festival founded?") == []


def test_figures_answer_which_questions_only_when_a_figure_is_asked() -> None:
    sentence = "Handi-Snacks are sold by Mondelez International, which employs 107,000 people."
    assert "107,000" not in find_spans(sentence, "entity", "Handi-Snacks are sold by what company?")
    assert "107,000" in find_spans(sentence, "entity", "What is the size of the staff of the firm?")
    assert find_spans("The serial on the kayak engine is 58583.", "entity", "What is the serial on the kayak engine?")
    assert "1975" not in find_spans("The serial killer Bo Lin was convicted in 1975.", "entity", "Which serial killer?")


def test_a_name_is_said_as_a_whole_word() -> None:
    assert says("It stands near Tarn, by the river.", "Tarn")
    assert not says("It stands near Tarnow.", "Tarn")


def test_a_firms_legal_form_and_an_ampersand_stay_in_its_name() -> None:
    text = "Mondelez International, Inc., styled Mondelez, is a firm. Lush Ltd. is in Poole. Simon & Schuster sold it."
    assert entities(text) == ["Mondelez International, Inc", "Mondelez", "Lush Ltd", "Poole", "Simon & Schuster"]
    assert "Navan, Co" not in entities("He was born in Navan, Co. Meath.")  # Co. here is a county


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Which board game was published most recently, Pirate's Cove or Catan?", "Pirate's Cove"),
        ("Which author has won more prizes, Ada Vell or Bo Lin?", "Bo Lin"),  # number words count
        ("Which dog descends from setters, the Manchester Terrier or the Scotch Collie?", "the Scotch Collie"),
        ("Which writer was from Tarn, Ada Vell or Bo Lin?", ""),  # neither passage says more: undecided
    ],
)
def test_a_choice_between_two_is_one_of_them_or_undecided(question: str, answer: str) -> None:
    passages = [
        ("Pirate's Cove", "Pirate's Cove is a board game first published in 2002."),
        ("Catan", "Catan is a board game first published in 1995."),
        ("Ada Vell", "Ada Vell is a writer who won two prizes in 1999."),
        ("Bo Lin", "Bo Lin is a writer who won three prizes in 1980."),
        ("Manchester Terrier", "The Manchester Terrier is a breed of terrier from England."),
        ("Scotch Collie", "The Scotch Collie is a breed whose ancestors include setters."),
    ]
    assert read_question(question).form == "comparison"
    assert compare(question, passages) == answer


def test_a_wh_word_inside_a_quoted_title_is_not_the_question_word() -> None:
    question = 'The soundtrack to "When Harry Met Sally" is sung by a singer with how many albums?'
    assert read_question(question).kind == "number"


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        # "where", "who" after a noun open a relative clause; "how many", "what" ask
        ("The arena where the Kestrel Rovers played can seat how many people?", "number"),
        ("Ada Vell was the friend of the pilot who had how many victories?", "number"),
        ("The manager who signed Bo Lin led the club during what timeframe?", "entity"),
        ("The team, led by a coach who joined in 2011, represented a college founded in what year?", "date"),
        ("The novel was written by an author who was born where?", "place"),  # no asking word but the last
        ("The player who was born in 1990 plays for which team?", "entity"),  # a closing "which" phrase
        # a wh-word opening a sentence asks, whatever a "what" after it does
        ("The crystal sextant ended up with someone. Where does that person keep what they own?", "place"),
    ],
)
def test_a_relative_wh_word_is_not_the_question_word(question: str, kind: str) -> None:
    assert read_question(question).kind == kind


def test_as_whom_asks_for_the_name_after_as() -> None:
    sentence = "Jillian Bell is an actress who had a recurring role as Jillian Belk on Workaholics."
    scores = span_scores(sentence, "person", "The actress had a recurring role as whom on Workaholics?")
    assert max(scores, key=lambda s: scores[s]) == "Jillian Belk"  # not the sentence's subject


def test_a_pronoun_opening_a_lead_passage_sentence_is_its_title() -> None:
    sentence = "It is the largest airport in the New England region."
    question = "What airport is the largest airport in the New England region?"
    scores = span_scores(sentence, "entity", question, subject="Logan Airport", lead=True)
    assert list(scores) == ["Logan Airport"]
    assert scores["Logan Airport"] == 9.0  # the subject: five question words after it, and the asked noun
    # Not in a passage that does not open with its title: "It" may be anything there.
    assert "Logan Airport" not in span_scores(sentence, "entity", question, subject="Logan Airport")


_PEOPLE = [
    ("Ada Vell", "Ada Vell (born 1961) is a Danish architect and painter who built the Lumen bridge."),
    ("Bo Lin", "Bo Lin (1920-1990) was a Danish painter and poet."),
    ("Cy Moor", "Cy Moor is a Chinese poet and editor."),
    ("Lumen bridge", "The Lumen bridge spans the Vell river near Bergen in Norway."),
    ("Tarn tower", "The Tarn tower is a lighthouse in Bergen, Norway."),
]


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Which profession do Ada Vell and Bo Lin share?", "painter"),
        ("What occupation was shared by Bo Lin and Cy Moor?", "poet"),
        ("What line of work did Ada Vell and Cy Moor have in common?", ""),  # nothing in both passages
        ("Which profession do Ada Vell and Dee Holm share?", ""),  # no passage about Dee Holm
        ("What city does the Lumen bridge and the Tarn tower have in common?", "Bergen"),
        ("Which profession does Ada Vell have?", ""),  # not an "in common" question
    ],
)
def test_what_two_things_have_in_common_is_in_the_passage_of_each(question: str, answer: str) -> None:
    assert shared(question, _PEOPLE) == answer


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Were Ada Vell and Bo Lin of the same nationality?", "yes"),
        ("Were Ada Vell and Cy Moor of the same nationality?", "no"),
        ("Are Ada Vell and Cy Moor both Danish?", "no"),
        ("Are Ada Vell and Bo Lin both Danish?", "yes"),
        ("Were the Lumen bridge and Ada Vell of the same nationality?", ""),  # the bridge's passage gives none
    ],
)
def test_a_nationality_comparison_reads_each_passages_own_description(question: str, answer: str) -> None:
    assert read_question(question).form == "comparison"
    assert compare(question, _PEOPLE) == answer


def test_each_side_of_two_names_joined_by_and_must_be_mentioned() -> None:
    passages = ["Ada Vell was a Danish painter who lived in Malmö.", "Pride and Prejudice is a novel."]
    assert unmentioned("Were Ada Vell and Cy Moor both painters?", passages) == ["Cy Moor"]
    assert unmentioned("Did Ada Vell live in Malmo?", passages) == []  # the accent does not matter
    assert unmentioned("Who wrote Pride and Prejudice?", passages) == []


def test_a_city_is_not_a_university_or_a_stadium_in_it() -> None:
    sentence = "Ada Vell taught at Tarn University in Bergen and played at Lumen Stadium."
    spans = find_spans(sentence, "place", "Ada Vell taught at a university located in what city?")
    assert spans[0] == "Bergen"
    assert not any(s.endswith(("University", "Stadium")) for s in spans)
    assert "Tarn University" in find_spans(sentence, "place", "Where did Ada Vell teach?")  # no city asked


_MORE_PEOPLE = [
    ("Ada Vell", "Ada Vell (born 1961) is a Danish painter. She met Bo Lin in 1990."),
    ("Cy Moor", "Cy Moor is an English actor and director."),
    ("Dee Holm", "Dee Holm is a British actress. Unlike her brother, a director, she never wrote."),
    ("Eli Park", "Eli Park was a Catholic priest born in Dublin. His father was a Polish immigrant."),
    ("Fay Berg", "Fay Berg was a German-born physicist who became a citizen of Switzerland."),
    ("Gus Ward", "Gus Ward was a German physicist and a Catholic priest."),
    ("Eric Vale", "Eric Vale is an English guitarist."),
    ("Jo Page", "Jo Page is an English guitarist and singer."),
    ("Tarn", "Tarn is a 2001 Danish film about a lighthouse."),
    ("Lumen", "Lumen is a Danish novel by Ada Vell."),
]


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Which profession do Ada Vell and Bo Lin share?", ""),  # Bo Lin has no passage of his own here
        ("What occupation do Cy Moor and Dee Holm share?", ""),  # her brother's job is not hers
        ("Did Cy Moor and Dee Holm share a director?", ""),  # not a "what/which X" question
        ("What nationality do Cy Moor and Eric Vale share?", ""),  # neither an occupation nor a place
        ("What occupation do Eric Vale and Jo Page share?", "guitarist"),
    ],
)
def test_in_common_reads_only_each_ones_own_description(question: str, answer: str) -> None:
    assert shared(question, _MORE_PEOPLE) == answer


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Were Cy Moor and Dee Holm of the same nationality?", ""),  # English and British: both may hold
        ("Were Eli Park and Gus Ward of the same nationality?", ""),  # a religion, a father's: no nationality
        ("Were Fay Berg and Gus Ward of the same nationality?", ""),  # "German-born" says where she was born
        ("Are Tarn and Lumen both Danish films?", ""),  # Lumen is a novel
        ("Are Tarn and Lumen both Danish?", "yes"),
        ("Which director shares the same nationality as Cy Moor, Ada Vell or Dee Holm?", ""),  # a choice
    ],
)
def test_nationality_is_read_from_a_closed_list_in_the_opening_description(question: str, answer: str) -> None:
    assert compare(question, _MORE_PEOPLE) == answer


def test_a_first_name_after_both_is_no_nationality() -> None:
    assert compare("Were both Eric Vale and Jo Page guitarists?", _MORE_PEOPLE) == "yes"
    assert read_question("Did Ada Vell and Cy Moor reach the same highest chart position?").form != "comparison"


@pytest.mark.parametrize(
    ("sentence", "question", "first"),
    [
        ("Ada Vell was born in Menlo Park, California, in 1961.", "In what city was Ada Vell born?", "Menlo Park"),
        ("Ada Vell was born in Falls Church, Virginia.", "In what city was Ada Vell born?", "Falls Church"),
        ("Ada Vell studied at the University of Chicago in Illinois.", "In what city did Ada Vell study?", "Illinois"),
    ],
)
def test_towns_named_like_buildings_stay_places(sentence: str, question: str, first: str) -> None:
    assert find_spans(sentence, "place", question)[0] == first


def test_letters_nfkd_keeps_whole_are_folded_too() -> None:
    assert unmentioned("Is Tromso north of Lodz?", ["Tromsø and Łódź are cities."]) == []
