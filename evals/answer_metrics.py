"""Answer, supporting-fact, abstention, citation and groundedness metrics for one question each.

Answer metrics follow the official SQuAD v2.0 script (``evaluate-v2.0.py``) and HotpotQA's
``hotpot_evaluate_v1.py``; both normalise text with :func:`normalize_answer`. A metric that is
undefined for a question (a zero denominator) returns ``None``; :func:`mean_defined` averages the
defined values.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from statistics import fmean

__all__ = [
    "abstention_scores",
    "all_gold_found_at_k",
    "citation_scores",
    "exact_match",
    "f1_score",
    "hotpot_f1",
    "is_abstention",
    "lexical_groundedness",
    "mean_defined",
    "normalize_answer",
    "recall_ids_at_k",
    "supporting_fact_scores",
]

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_HOTPOT_SPECIAL = frozenset({"yes", "no", "noanswer"})


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop ASCII punctuation, drop the words a/an/the, collapse spaces.

    Only ``string.punctuation`` is dropped, so non-ASCII marks such as the en dash
    (U+2013) or curly quotes stay.
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _gold_answers(answers: Sequence[str]) -> list[str]:
    # As in evaluate-v2.0.py: golds that normalise to nothing are dropped; none left = unanswerable.
    return [normalize_answer(a) for a in answers if normalize_answer(a)]


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer, else 0.0.

    With no gold answer (SQuAD 2.0 unanswerable; golds normalising to "" are ignored) the score
    is 1.0 exactly when the normalised prediction is empty.
    """
    pred = normalize_answer(prediction)
    golds = _gold_answers(answers)
    if not golds:
        return float(pred == "")
    return max(float(pred == gold) for gold in golds)


def _token_overlap(pred_tokens: Sequence[str], gold_tokens: Sequence[str]) -> tuple[float, float, float]:
    """(f1, precision, recall) of two token bags; (0, 0, 0) when they share no token."""
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0, 0.0, 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall), precision, recall


def f1_score(prediction: str, answers: Sequence[str]) -> float:
    """Best token F1 of the normalised prediction against any gold answer (SQuAD 2.0).

    With no gold answer the score is 1.0 for an empty prediction and 0.0 otherwise; an empty
    prediction against a gold answer scores 0.0.
    """
    pred_tokens = normalize_answer(prediction).split()
    golds = _gold_answers(answers)
    if not golds:
        return float(not pred_tokens)
    if not pred_tokens:
        return 0.0
    return max(_token_overlap(pred_tokens, gold.split())[0] for gold in golds)


def hotpot_f1(prediction: str, answer: str) -> tuple[float, float, float]:
    """HotpotQA answer ``(f1, precision, recall)`` against one gold answer.

    When either normalised side is "yes", "no" or "noanswer" and the two differ, all three are 0.
    As in the official script, two empty answers score 0. HotpotQA's answer EM equals
    ``exact_match(prediction, [answer])``.
    """
    pred = normalize_answer(prediction)
    gold = normalize_answer(answer)
    if pred != gold and (pred in _HOTPOT_SPECIAL or gold in _HOTPOT_SPECIAL):
        return 0.0, 0.0, 0.0
    return _token_overlap(pred.split(), gold.split())


def supporting_fact_scores(predicted: Iterable[tuple[str, int]], gold: Iterable[tuple[str, int]]) -> dict[str, float]:
    """HotpotQA supporting-fact ``em``, ``f1``, ``precision`` and ``recall``.

    Facts are ``(title, sentence_index)`` pairs compared as sets (duplicates count once).
    Precision and recall are 0 on a zero denominator, so two empty sets give em 1.0 and f1 0.0.
    """
    pred_set = {(title, index) for title, index in predicted}
    gold_set = {(title, index) for title, index in gold}
    tp = len(pred_set & gold_set)
    fp = len(pred_set - gold_set)
    fn = len(gold_set - pred_set)
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"em": 1.0 if fp + fn == 0 else 0.0, "f1": f1, "precision": precision, "recall": recall}


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def abstention_scores(rows: Sequence[tuple[bool, bool]]) -> dict[str, float | None]:
    """Precision, recall and F1 of abstaining, treating unanswerable questions as the positives.

    Args:
        rows: one ``(abstained, answerable)`` pair per question.

    Returns:
        ``precision`` (share of abstentions that were on unanswerable questions), ``recall``
        (share of unanswerable questions abstained on), ``f1`` (``None`` when either is), and the
        counts ``abstained`` and ``unanswerable``. A ratio with a zero denominator is ``None``.
    """
    abstained = sum(1 for did_abstain, _ in rows if did_abstain)
    unanswerable = sum(1 for _, answerable in rows if not answerable)
    correct = sum(1 for did_abstain, answerable in rows if did_abstain and not answerable)
    precision = _ratio(correct, abstained)
    recall = _ratio(correct, unanswerable)
    return {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "abstained": float(abstained),
        "unanswerable": float(unanswerable),
    }


_ABSTENTION_ANSWERS = frozenset(
    {
        "cannot answer",
        "i do not know",
        "i don't know",
        "insufficient",
        "insufficient information",
        "no answer",
        "noanswer",
        "not answerable",
        "unanswerable",
        "unknown",
    }
)
_SOURCE = r"(?:sources?|context|passages?|documents?|evidence|excerpts?|texts?)"
_ABSTENTION_PHRASES = re.compile(
    "|".join(
        (
            r"^no answer\b",
            r"\bi (?:do not|don't|dont) know\b",
            r"\b(?:cannot|can't|can not|unable to|not able to) (?:answer|be answered)\b",
            r"\bnot enough (?:information|context|evidence)\b",
            r"\binsufficient (?:information|context|evidence)\b",
            rf"\b{_SOURCE}(?: provided| given| above)? (?:do|does|did)(?: not|n't) "
            r"(?:contain|answer|mention|provide|include|say|state|specify)\b",
            rf"\bfound nothing in the {_SOURCE}\b",
        )
    )
)


def is_abstention(answer: str) -> bool:
    """Whether ``answer`` declines to answer; conservative, so a hedged answer is not one.

    True for an empty or blank answer; for a whole answer (case and trailing ``.!`` ignored) of
    "unknown", "no answer", "noanswer", "unanswerable", "insufficient" and the like; and for an
    answer that starts with "no answer" or contains "I don't know", "cannot answer", "can't be
    answered", "not enough information", "insufficient information/context/evidence", "found
    nothing in the sources" or "the sources/context/passages do not contain/answer/mention ...".
    An answer that names a fact and also notes a gap in the sources therefore counts as one.
    """
    text = " ".join(answer.replace("\u2019", "'").lower().split())
    if not text or text.rstrip(".! ") in _ABSTENTION_ANSWERS:
        return True
    return _ABSTENTION_PHRASES.search(text) is not None


def _top_k(ranking: Sequence[str], k: int) -> set[str]:
    if k < 1:
        msg = f"k must be at least 1, got {k}"
        raise ValueError(msg)
    return set(ranking[:k])


def all_gold_found_at_k(ranking: Sequence[str], gold: Collection[str], k: int) -> float:
    """1.0 when every gold id is among the first ``k`` ranked ids, else 0.0.

    Empty ``gold`` scores 0.0; callers should skip such questions rather than average them.
    """
    top = _top_k(ranking, k)
    return 1.0 if gold and top.issuperset(gold) else 0.0


def recall_ids_at_k(ranking: Sequence[str], gold: Collection[str], k: int) -> float:
    """Share of the distinct gold ids among the first ``k`` ranked ids (0.0 for empty ``gold``).

    An id repeated in the ranking counts once; ``k`` counts positions, repeats included.
    """
    top = _top_k(ranking, k)
    gold_set = set(gold)
    return len(gold_set & top) / len(gold_set) if gold_set else 0.0


def citation_scores(
    cited: Sequence[str], gold: Collection[str], supported: Collection[str] = ()
) -> dict[str, float | None]:
    """Precision, recall and F1 of an answer's citations.

    Args:
        cited: ids of the cited passages in citation order; repeats count once.
        gold: ids of the passages that hold the answer.
        supported: further ids a judge found to support the claim they are cited for.

    Returns:
        ``precision`` (share of distinct cited ids that are gold or supported), ``recall``
        (share of gold ids cited) and ``f1``; ``None`` where a denominator is 0.
    """
    cited_set = set(cited)
    gold_set = set(gold)
    precision = _ratio(len(cited_set & (gold_set | set(supported))), len(cited_set))
    recall = _ratio(len(cited_set & gold_set), len(gold_set))
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


_CITATION_MARKER = re.compile(r"\[\s*\d+(?:\s*[,;\u2013-]\s*\d+)*\s*\]")
_STOPWORD_TEXT = (
    "i me my we our you your he him his she her it its they them their this that these those "
    "is are was were be been being am do does did doing has have had having will would shall should "
    "can could may might must of in on at to for from by with about as into than then so and or but "
    "if not no nor there here what which who whom whose when where why how also"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _content_tokens(text: str) -> set[str]:
    # Tokens without a letter or digit (e.g. a lone en dash) carry no content.
    tokens = normalize_answer(text).split()
    return {t for t in tokens if t not in _STOPWORDS and any(ch.isalnum() for ch in t)}


def lexical_groundedness(answer: str, passages: Sequence[str]) -> float | None:
    """Share of the answer's distinct content tokens that occur in any of ``passages``.

    Tokens are :func:`normalize_answer` words minus a small English stopword list, minus tokens
    with no letter or digit, after citation markers such as ``[1]``, ``[2, 3]`` or ``[1-3]`` are
    removed. ``None`` when the answer has no content token.
    """
    answer_tokens = _content_tokens(_CITATION_MARKER.sub(" ", answer))
    if not answer_tokens:
        return None
    passage_tokens: set[str] = set()
    for passage in passages:
        passage_tokens.update(normalize_answer(passage).split())
    return len(answer_tokens & passage_tokens) / len(answer_tokens)


def mean_defined(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not ``None``; ``None`` when there are none."""
    defined = [v for v in values if v is not None]
    return fmean(defined) if defined else None
