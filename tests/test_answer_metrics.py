"""Answer, abstention, citation and groundedness metrics against hand-computed values."""

from __future__ import annotations

import string

import pytest

from evals.answer_metrics import (
    abstention_scores,
    all_gold_found_at_k,
    citation_scores,
    exact_match,
    f1_score,
    hotpot_f1,
    is_abstention,
    lexical_groundedness,
    mean_defined,
    normalize_answer,
    recall_ids_at_k,
    supporting_fact_scores,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Theater", "theater"),  # "the" goes only as a whole word
        ("anthem", "anthem"),  # "an" inside a word stays
        ("U.S. Army", "us army"),  # punctuation inside a word joins its parts
        ("A-team", "ateam"),  # punctuation goes before articles, so "a-" is no longer a word
        ("  An\tapple,\n a  day!  ", "apple day"),  # tabs, newlines, runs of spaces
        ("THE END", "end"),
        ("Don't", "dont"),
        ("the a an", ""),
        ("", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_normalize_answer_keeps_unicode_punctuation() -> None:
    assert "\u2013" not in string.punctuation
    assert normalize_answer("1990\u20131995") == "1990\u20131995"
    # the en dash is not a word character, so "a" before it is a whole word and goes
    assert normalize_answer("a\u2013b") == "\u2013b"
    assert normalize_answer("\u201cHello\u201d") == "\u201chello\u201d"


def test_exact_match() -> None:
    assert exact_match("the Eiffel Tower!", ["Eiffel tower"]) == 1.0
    assert exact_match("Paris", ["London", "paris."]) == 1.0  # max over golds
    assert exact_match("Paris, France", ["Paris"]) == 0.0


def test_exact_match_unanswerable() -> None:
    assert exact_match("", []) == 1.0
    assert exact_match("The.", []) == 1.0  # normalises to ""
    assert exact_match("Paris", []) == 0.0
    # golds that normalise to "" are dropped, as in evaluate-v2.0.py: none left = unanswerable
    assert exact_match("", ["the"]) == 1.0
    assert exact_match("x", ["", "a"]) == 0.0


def test_f1_score_overlap() -> None:
    # pred [cat, sat, on, mat], gold [cat, on, mat]: 3 shared; p = 3/4, r = 1, f1 = 1.5 / 1.75 = 6/7
    assert f1_score("the cat sat on the mat", ["a cat on a mat"]) == pytest.approx(6 / 7)
    assert f1_score("Berlin", ["Paris"]) == 0.0


def test_f1_score_counts_repeated_tokens_once_per_match() -> None:
    # pred [new, york, new, york], gold [new, york]: Counter & gives 2; p = 2/4, r = 1, f1 = 1 / 1.5 = 2/3
    assert f1_score("New York New York", ["New York"]) == pytest.approx(2 / 3)
    # pred [new, york], gold [new, new, york, york, city]: 2 shared; p = 1, r = 2/5, f1 = 0.8 / 1.4 = 4/7
    assert f1_score("New York", ["new new york york city"]) == pytest.approx(4 / 7)


def test_f1_score_takes_best_gold() -> None:
    # vs "obama": p = 1/2, r = 1, f1 = 2/3; vs "president barack obama": p = 1, r = 2/3, f1 = (4/3) / (5/3) = 0.8
    assert f1_score("Barack Obama", ["Obama", "President Barack Obama"]) == pytest.approx(0.8)


def test_f1_score_empty_rules() -> None:
    assert f1_score("", []) == 1.0
    assert f1_score("nothing", []) == 0.0
    assert f1_score("", ["Paris"]) == 0.0
    assert f1_score("the", ["Paris"]) == 0.0  # prediction normalises to ""
    assert f1_score("Paris", ["", "Paris"]) == 1.0  # the empty gold is dropped


def test_hotpot_f1_yes_no_rule() -> None:
    assert hotpot_f1("yes", "no") == (0.0, 0.0, 0.0)
    assert hotpot_f1("Yes.", "yes") == (1.0, 1.0, 1.0)
    # a plain F1 would give p = 1/3, r = 1; the rule zeroes it because the gold is "yes"
    assert hotpot_f1("yes it is", "yes") == (0.0, 0.0, 0.0)
    assert hotpot_f1("no", "no way") == (0.0, 0.0, 0.0)  # prediction "no" differs from the gold
    assert hotpot_f1("no answer", "noanswer") == (0.0, 0.0, 0.0)


def test_hotpot_f1_plain_answers() -> None:
    # pred [battle, of, hastings], gold [battle, of, hastings, 1066]: p = 1, r = 3/4, f1 = 1.5 / 1.75 = 6/7
    f1, precision, recall = hotpot_f1("the Battle of Hastings", "Battle of Hastings 1066")
    assert (f1, precision, recall) == pytest.approx((6 / 7, 1.0, 0.75))
    assert hotpot_f1("", "") == (0.0, 0.0, 0.0)  # no shared token, as in the official script


def test_supporting_fact_scores_use_sets() -> None:
    predicted = [("A", 0), ("A", 0), ("B", 1), ("C", 2)]
    gold = [("A", 0), ("B", 1), ("B", 2), ("B", 1)]
    # sets {A0, B1, C2} vs {A0, B1, B2}: tp = 2, fp = 1, fn = 1; p = r = f1 = 2/3, em = 0
    scores = supporting_fact_scores(predicted, gold)
    assert scores == pytest.approx({"em": 0.0, "f1": 2 / 3, "precision": 2 / 3, "recall": 2 / 3})
    assert supporting_fact_scores([("A", 0), ("A", 0)], [("A", 0)]) == {
        "em": 1.0,
        "f1": 1.0,
        "precision": 1.0,
        "recall": 1.0,
    }


def test_supporting_fact_scores_empty_sets() -> None:
    # tp = fp = fn = 0: em 1 (fp + fn == 0), precision and recall 0 by convention
    assert supporting_fact_scores([], []) == {"em": 1.0, "f1": 0.0, "precision": 0.0, "recall": 0.0}
    # tp = fp = 0, fn = 1
    assert supporting_fact_scores([], [("A", 0)]) == {"em": 0.0, "f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_abstention_scores() -> None:
    rows = [(True, False), (True, True), (True, True), (False, False)]
    # abstained 3, unanswerable 2, abstained on unanswerable 1: p = 1/3, r = 1/2, f1 = (1/3) / (5/6) = 2/5
    scores = abstention_scores(rows)
    assert scores == pytest.approx(
        {"precision": 1 / 3, "recall": 0.5, "f1": 0.4, "abstained": 3.0, "unanswerable": 2.0}
    )


def test_abstention_scores_zero_denominators() -> None:
    empty = {"precision": None, "recall": None, "f1": None, "abstained": 0.0, "unanswerable": 0.0}
    assert abstention_scores([]) == empty
    assert abstention_scores([(False, True)]) == empty
    # abstained once, nothing unanswerable: p = 0/1, r undefined
    assert abstention_scores([(True, True)]) == {
        "precision": 0.0,
        "recall": None,
        "f1": None,
        "abstained": 1.0,
        "unanswerable": 0.0,
    }
    # one unanswerable question, never abstained: p undefined, r = 0/1
    assert abstention_scores([(False, False)])["precision"] is None
    assert abstention_scores([(False, False)])["recall"] == 0.0
    # p = 0/1 and r = 0/1: f1 defined and 0
    assert abstention_scores([(True, True), (False, False)])["f1"] == 0.0


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "   \n",
        "I don't know.",
        "I don\u2019t know",
        "Unknown",
        "INSUFFICIENT",
        "No answer: the passages only discuss the sequel.",
        "The provided sources do not contain the founding date.",
        "The context doesn't mention it.",
        "This cannot be answered from the passages.",
        "There is not enough information to say.",
        "I found nothing in the sources that answers 'who?'.",
        "The sources do not answer 'when?'.",
    ],
)
def test_is_abstention_true(answer: str) -> None:
    assert is_abstention(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "Paris",
        "The population is unknown to historians but estimated at 5,000.",
        "Water does not contain carbon.",
        "No, the treaty was never signed.",
        "Insufficient funding ended the project in 1972.",
        "None",
        "The answer is no.",
    ],
)
def test_is_abstention_false(answer: str) -> None:
    assert not is_abstention(answer)


def test_all_gold_found_at_k() -> None:
    ranking = ["a", "b", "a", "c"]
    assert all_gold_found_at_k(ranking, {"a", "c"}, 3) == 0.0  # top 3 = {a, b}
    assert all_gold_found_at_k(ranking, {"a", "c"}, 4) == 1.0
    assert all_gold_found_at_k(ranking, set(), 4) == 0.0
    with pytest.raises(ValueError, match="k must be at least 1"):
        all_gold_found_at_k(ranking, {"a"}, 0)


def test_recall_ids_at_k() -> None:
    ranking = ["a", "a", "b", "c"]
    gold = ["a", "c", "d"]
    assert recall_ids_at_k(ranking, gold, 2) == pytest.approx(1 / 3)  # top 2 = {a}
    assert recall_ids_at_k(ranking, gold, 4) == pytest.approx(2 / 3)  # {a, b, c} holds a, c
    assert recall_ids_at_k(ranking, gold, 10) == pytest.approx(2 / 3)
    assert recall_ids_at_k(ranking, ["a", "a"], 1) == 1.0  # gold {a}
    assert recall_ids_at_k(ranking, [], 4) == 0.0
    with pytest.raises(ValueError, match="k must be at least 1"):
        recall_ids_at_k(ranking, gold, -1)


def test_citation_scores_with_repeats() -> None:
    cited = ["d1", "d2", "d1", "d3", "d2"]
    # distinct {d1, d2, d3}; good {d1 (gold), d3 (supported)}: p = 2/3; gold {d1, d4} cited d1: r = 1/2
    # f1 = 2 * (1/3) / (7/6) = 4/7
    scores = citation_scores(cited, {"d1", "d4"}, supported={"d3"})
    assert scores == pytest.approx({"precision": 2 / 3, "recall": 0.5, "f1": 4 / 7})
    # without d3 supported: p = 1/3, r = 1/2, f1 = (1/3) / (5/6) = 2/5
    assert citation_scores(cited, {"d1", "d4"}) == pytest.approx({"precision": 1 / 3, "recall": 0.5, "f1": 0.4})


def test_citation_scores_zero_denominators() -> None:
    assert citation_scores([], {"d1"}) == {"precision": None, "recall": 0.0, "f1": None}
    assert citation_scores(["d1"], []) == {"precision": 0.0, "recall": None, "f1": None}
    assert citation_scores(["d1"], [], supported=["d1"]) == {"precision": 1.0, "recall": None, "f1": None}


def test_lexical_groundedness() -> None:
    passages = ["Curie shared the 1903 Nobel Prize in Physics.", "She was born in Warsaw."]
    # content tokens {marie, curie, won, nobel, prize, 1903}; found curie, nobel, prize, 1903: 4/6
    answer = "Marie Curie won the Nobel Prize in 1903 [1]."
    assert lexical_groundedness(answer, passages) == pytest.approx(2 / 3)
    # markers go before normalising, else "Paris[1]" would become the token "paris1"
    assert lexical_groundedness("Paris[1][2, 3].", ["Paris is the capital."]) == 1.0
    # distinct tokens {paris, london}: 1/2
    assert lexical_groundedness("Paris Paris London", ["Paris"]) == 0.5
    # the lone en dash is no content token: {1990, 1995}, 1/2
    assert lexical_groundedness("1990 \u2013 1995", ["In 1990."]) == 0.5
    assert lexical_groundedness("Paris", []) == 0.0


def test_lexical_groundedness_without_content_is_none() -> None:
    assert lexical_groundedness("", ["x"]) is None
    assert lexical_groundedness("The [1].", ["x"]) is None
    assert lexical_groundedness("It is what it is.", ["x"]) is None


def test_mean_defined() -> None:
    assert mean_defined([1.0, None, 0.5]) == 0.75  # (1.0 + 0.5) / 2
    assert mean_defined(v for v in [0.0, None]) == 0.0
    assert mean_defined([None]) is None
    assert mean_defined([]) is None
