"""Long-context tasks beyond the needle: lookups, two-hop chains, aggregation over records, and
questions an offline reader must decline, hidden in the Paul Graham essays (1M-10M characters).

Kinds (each item knows its gold answer and how to score a result):

- ``lookup``: one fact sentence, asked about with other words than the fact's own.
- ``chain``: one sentence says who an object (or a bridge, a ship...) went to, a far-away one what
  that person did or where they keep things; three distractor chains of other objects and people.
- ``distinct`` / ``list``: 20-60 record lines of one format (a few dozen repeated values) scattered
  through the text, with a second record type beside them; "how many distinct X" / "list all X".
- ``most`` / ``sum``: the most frequent value of a record field; the sum of a count field.
- ``unsupported``: summaries, explanations, comparisons, and lookups of a fact that is not there
  (a near-miss of a fact that is): the honest exit is ``abstained``.

Every template has a ``dev`` and a ``test`` wording (verbs, record formats, question forms): tune
on ``dev``, report on ``test``. Everything derives from ``seed``.

    python -m evals.bench_rlm tasks --split test --lengths 1000000,10000000 --per-kind 30
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KINDS", "LongTask", "long_tasks", "score"]

KINDS = ("lookup", "chain", "distinct", "list", "most", "sum", "unsupported")


def _words(text: str) -> list[str]:
    return text.split()


_FIRST = _words(
    "Orla Ivo Mara Tomas Senna Edda Pavel Liesl Caspar Nadia Rune Ysolde Bram Inez Oskar Hale Wren Dorian Talia Milo "
    "Greta Anselm Petra Joss Katia Leif Marit Nico Saskia Teodor Ulla Viggo Zelda Aurel Brigid Cosmo Delphine Emrys"
)
_LAST = _words(
    "Fenn Marsh Quill Thorne Vale Ashby Corrin Dunmore Hollis Kestrel Larkin Morrow Pike Rook Sallow Tarrant Voss "
    "Wick Ember Galloway Hartigan Ingle Jessop Kimber Lowry Merrow Norland Ostrander Pellow Quarry Renwick Stroud"
)
_TOWNS = _words(
    "Tarn Velmora Eskby Harrowgate Lindqvist Brackwater Corrowick Dunhelm Ferrisford Galeport Holmstead Ivybridge "
    "Kelderby Lowmoor Marchbank Northope Oakhurst Pellingford Quenby Rathmore Saltcombe Thistlecross Umberleigh"
)
_KEYS = _words(
    "lighthouse walrus teapot glacier accordion pelican lantern cactus violin harbor meteor saddle origami avalanche "
    "tangerine compass falcon quarry marmalade kayak sapphire tornado pumpkin caravan juniper beacon hammock mongoose"
)
_ADJECTIVES = _words("silver brass copper jade ivory bronze pewter amber ebony crystal")
_OBJECT_NAMES = ("compass", "locket", "telescope", "music box", "pocket watch", "sextant", "chess set", "hourglass")
_PLACES = (
    "the cedar chest",
    "a locked drawer of the study desk",
    "the boathouse loft",
    "the attic above the mill",
    "a tin box under the stairs",
    "the safe behind the bookcase",
    "the cellar of the old granary",
    "a hatbox on the wardrobe",
    "the hayloft of the east barn",
    "a biscuit tin in the pantry",
)

# (fact, questions, answer field, kind) per split; {key} {name} {num} {year} {town} filled per item.
_LOOKUPS: dict[str, list[tuple[str, list[str], str]]] = {
    "dev": [
        ("The access code for the {key} locker is {num}.", ["What is the access code for the {key} locker?"], "num"),
        (
            "{name} founded the {key} society in {year}.",
            ["In what year was the {key} society founded?", "When did {name} found the {key} society?"],
            "year",
        ),
        ("The {key} archive is housed in {town}.", ["Where is the {key} archive housed?"], "town"),
        ("The {key} medal of that spring was awarded to {name}.", ["Who was awarded the {key} medal?"], "name"),
        ("The {key} ferry carries {num} passengers a day.", ["How many passengers does the {key} ferry carry?"], "num"),
        ("The serial stamped on the {key} engine is {num}.", ["What is the serial on the {key} engine?"], "num"),
        ("Old papers say the {key} bell was cast by {name}.", ["Who forged the {key} bell?"], "name"),
    ],
    "test": [
        (
            "Records show that the {key} vault combination is {num}.",
            ["What is the combination of the {key} vault?"],
            "num",
        ),
        (
            "The {key} observatory first opened its doors in {year}.",
            ["In which year did the {key} observatory open?", "When did the {key} observatory open?"],
            "year",
        ),
        ("Nowadays the {key} ledger is kept in {town}.", ["In which town is the {key} ledger kept?"], "town"),
        ("That year the {key} trophy went to {name}.", ["Who received the {key} trophy?"], "name"),
        (
            "Each winter the {key} shelter feeds {num} families.",
            ["How many families does the {key} shelter feed?"],
            "num",
        ),
    ],
}

# Chains: hop one (object -> person), hop two (person -> place), the question.
_CHAINS: dict[str, dict[str, list[str]]] = {
    "dev": {
        "hop1": ["The {obj} was given to {person}.", "In the end the {obj} passed to {person}."],
        "hop2": ["{person} keeps everything of value in {place}.", "{person} stores her belongings in {place}."],
        "question": [
            "Where does the person who was given the {obj} keep it?",
            "Where does the one who received the {obj} keep things?",
            "Someone was handed the {obj} once. Where does that person store it?",
        ],
    },
    "test": {
        "hop1": ["After the auction, the {obj} went to {person}.", "The {obj} was entrusted to {person} years ago."],
        "hop2": ["Whatever {person} owns ends up in {place}.", "{person} hides anything precious in {place}."],
        "question": [
            "The {obj} ended up with someone. Where does that person keep what they own?",
            "Where would whoever got the {obj} put it away?",
        ],
    },
}
_BIRTH_CHAINS: dict[str, tuple[str, str, str]] = {
    "dev": (
        "The {key} bridge, finished in {year}, was designed by {person}.",
        "{person} was born in {town} and trained as an engineer.",
        "Where was the designer of the {key} bridge born?",
    ),
    "test": (
        "It was {person} who drew up the plans for the {key} tower.",
        "Before moving abroad, {person} grew up in {town}.",
        "In which town did the architect of the {key} tower grow up?",
    ),
}

# Records: (target noun in questions, record line with {v} and {n}, the distractor record line).
_RECORDS: dict[str, list[tuple[str, str, str, str]]] = {
    "dev": [
        ("vessels", "HARBOUR LOG | vessel: {v} | berth {n}", "HARBOUR LOG | cargo: timber | berth {n}", "ship"),
        ("visitors", "Visitor {v} signed in at gate {n}.", "Courier van {n} unloaded at the dock.", "person"),
        ("species", "[field note] species={v}; count {n}", "[field note] weather=rain; wind {n}", "bird"),
    ],
    "test": [
        (
            "couriers",
            "At dawn the courier {v} delivered parcel {n}.",
            "At dusk the night bus {n} left the depot.",
            "person",
        ),
        ("guests", "GUEST REGISTER - guest: {v} - room {n}", "GUEST REGISTER - staff: on duty - room {n}", "person"),
        ("tracks", "Now playing: track {v} (side {n})", "Now playing: interval music (side {n})", "title"),
    ],
}
_RECORD_QUESTIONS: dict[str, dict[str, list[str]]] = {
    "dev": {
        "distinct": ["How many distinct {t} are recorded?", "How many different {t} appear in the log?"],
        "list": ["List all the {t} recorded.", "Name every {t1} that appears in the records."],
        "most": ["Which {t1} appears most often?"],
        "sum": ["How many {u} were delivered in total?"],
    },
    "test": {
        "distinct": ["Count the unique {t} in these records.", "What is the number of distinct {t} logged?"],
        "list": ["What are all the {t} mentioned in the records?", "Give all the {t} that were logged."],
        "most": ["Which {t1} comes up most frequently in the log?"],
        "sum": ["What is the total number of {u} received?"],
    },
}
_SUM_RECORDS = {
    "dev": ("crates", "Delivery note: {n} crates from {v}.", "Delivery note: the van from {v} was late."),
    "test": ("sacks", "STORES | received {n} sacks | supplier {v}", "STORES | inspected | supplier {v}"),
}
_VALUES = {
    "ship": "Aurora,Kestrel Dawn,Sea Wren,Polaris,Grey Heron,Morning Star,Lady Ellen,Northwind,Tern,Calypso,"
    "Osprey,Valiant,Marigold,Selkie,Halcyon,Petrel,Brigantia,Wayfarer,Saltmarsh,Juno,Corsair,Merlin",
    "person": ",".join(f"{f} {last}" for f, last in zip(_FIRST, _LAST, strict=False)),
    "bird": "grey heron,barn owl,kestrel,little egret,curlew,lapwing,redshank,bittern,dunlin,godwit,snipe,"
    "whimbrel,avocet,oystercatcher,ringed plover,sanderling,knot,turnstone,shelduck,wigeon",
    "title": "Blue Harbour,Paper Moon,Falling North,Glass Hours,Iron Lullaby,Quiet Engine,Salt Road,"
    "Velvet Static,Winter Orchard,Amber Signal,Hollow Crown,Lantern Song,Silver Dusk,Open Water,Copper Sky",
}

_UNSUPPORTED: dict[str, list[str]] = {
    "dev": [
        "Summarise the essays in three sentences.",
        "Why does the author think startups should grow fast?",
        "What is the main argument of the text?",
        "Explain how the author's view of wealth changes.",
        "Compare the first essay with the last one.",
    ],
    "test": [
        "Give me a summary of what the author believes about cities.",
        "How does the author argue that hackers resemble painters?",
        "What overall tone does the writing take?",
        "Describe the author's advice to young founders.",
        "Contrast the author's views on schools and on startups.",
    ],
}
_ABSENT: dict[str, list[tuple[str, str]]] = {
    # a fact, and a question about a neighbour of it that the text does not hold
    "dev": [
        ("The access code for the {key} locker is {num}.", "What is the access code for the {other} locker?"),
        ("The {key} ferry carries {num} passengers a day.", "How many passengers does the {other} ferry carry?"),
        ("The special magic number for {key} is {num}.", "What is the special magic number for {other}?"),
    ],
    "test": [
        ("Each winter the {key} shelter feeds {num} families.", "How many families does the {other} shelter feed?")
    ],
}


@dataclass(frozen=True, slots=True)
class LongTask:
    """One question over a haystack with inserted sentences and record lines."""

    id: str
    kind: str
    question: str
    answer: Any
    """A string (lookup, chain, most, sum), an int (distinct), a sorted list (list), or None."""
    inserts: tuple[tuple[float, str, bool], ...]
    """(depth 0-1, text, on its own line) to insert."""
    chars: int
    wrong: tuple[str, ...] = field(default=())
    """Answers of the distractors (a chain's other places): a result naming one is wrong."""

    def context(self, base: str) -> str:
        """``base`` (a haystack of ``chars`` characters) with the inserts at their depths."""
        text = base
        for depth, insert, line in sorted(self.inserts, key=lambda i: -i[0]):  # back to front: offsets hold
            at = int(len(text) * depth)
            if line:
                stop = text.find("\n", at)
                at = len(text) if stop < 0 else stop
                text = f"{text[:at]}\n{insert}\n{text[at:]}"
            else:
                stop = text.rfind(". ", 0, at) if at < len(text) else len(text) - 2
                at = stop + 2 if stop >= 0 else 0
                text = f"{text[:at]}{insert} {text[at:]}"
        return text


def _pick(rng: random.Random, items: Sequence[Any]) -> Any:
    return items[rng.randrange(len(items))]


def _lookup(rng: random.Random, split: str, i: int, chars: int) -> LongTask:
    fact, questions, field_name = _pick(rng, _LOOKUPS[split])
    values = _fill(rng)
    return LongTask(
        id=f"lookup-{chars}-{i}",
        kind="lookup",
        question=_pick(rng, questions).format(**values),
        answer=values[field_name],
        inserts=((rng.random(), fact.format(**values), False),),
        chars=chars,
    )


def _fill(rng: random.Random) -> dict[str, str]:
    return {
        "key": _pick(rng, _KEYS),
        "name": f"{_pick(rng, _FIRST)} {_pick(rng, _LAST)}",
        "num": str(rng.randrange(1000, 99999)),
        "year": str(rng.randrange(1800, 1990)),
        "town": _pick(rng, _TOWNS),
    }


def _chain(rng: random.Random, split: str, i: int, chars: int) -> LongTask:
    people = rng.sample([f"{f} {last}" for f in _FIRST for last in _LAST], 4)
    if i % 4 == 3:  # one in four: the designer's birthplace (a named town)
        hop1, hop2, question = _BIRTH_CHAINS[split]
        keys, towns, years = (
            rng.sample(_KEYS, 4),
            rng.sample(_TOWNS, 4),
            [str(rng.randrange(1850, 1960)) for _ in people],
        )
        inserts = []
        for person, key, town, year in zip(people, keys, towns, years, strict=True):
            inserts.append((rng.random(), hop1.format(key=key, person=person, year=year), False))
            inserts.append((rng.random(), hop2.format(person=person, town=town), False))
        return LongTask(
            f"chain-{chars}-{i}",
            "chain",
            question.format(key=keys[0]),
            towns[0],
            tuple(inserts),
            chars,
            tuple(towns[1:]),
        )
    words = _CHAINS[split]
    adjectives = rng.sample(_ADJECTIVES, 4)
    noun = _pick(rng, _OBJECT_NAMES)
    objects = [f"{a} {noun}" for a in adjectives]  # distractors share the noun: only the adjective tells
    places = rng.sample(_PLACES, 4)
    inserts = []
    for obj, person, place in zip(objects, people, places, strict=True):
        inserts.append((rng.random(), _pick(rng, words["hop1"]).format(obj=obj, person=person), False))
        inserts.append((rng.random(), _pick(rng, words["hop2"]).format(person=person, place=place), False))
    question = _pick(rng, words["question"]).format(obj=objects[0])
    return LongTask(f"chain-{chars}-{i}", "chain", question, places[0], tuple(inserts), chars, tuple(places[1:]))


def _records(rng: random.Random, split: str, kind: str, i: int, chars: int) -> LongTask:
    if kind == "sum":
        unit, line, other = _SUM_RECORDS[split]
        suppliers = _VALUES["person"].split(",")[:12]
        counts = [rng.randrange(1, 60) for _ in range(rng.randrange(20, 45))]
        inserts = [(rng.random(), line.format(n=n, v=_pick(rng, suppliers)), True) for n in counts]
        inserts += [(rng.random(), other.format(v=_pick(rng, suppliers)), True) for _ in range(10)]
        question = _pick(rng, _RECORD_QUESTIONS[split]["sum"]).format(u=unit)
        return LongTask(f"sum-{chars}-{i}", "sum", question, str(sum(counts)), tuple(inserts), chars)
    target, line, other, pool = _pick(rng, _RECORDS[split])
    values = _VALUES[pool].split(",")
    chosen = rng.sample(values, rng.randrange(8, min(20, len(values))))
    weights = [rng.random() + (2.0 if k == 0 else 0.0) for k in range(len(chosen))]  # one clear favourite
    records = list(chosen) + rng.choices(chosen, weights=weights, k=rng.randrange(12, 40))
    inserts = [(rng.random(), line.format(v=v, n=rng.randrange(1, 40)), True) for v in records]
    inserts += [(rng.random(), other.format(n=rng.randrange(1, 40)), True) for _ in range(rng.randrange(10, 30))]
    singular = target[:-1] if target.endswith("s") and target != "species" else target
    question = _pick(rng, _RECORD_QUESTIONS[split][kind]).format(t=target, t1=singular)
    if kind == "distinct":
        answer: Any = len(chosen)
    elif kind == "list":
        answer = sorted(v.lower() for v in chosen)
    else:
        tally = {v: records.count(v) for v in chosen}
        top = max(tally.values())
        leaders = [v for v, c in tally.items() if c == top]
        if len(leaders) > 1:  # a clear favourite: one more record of the first leader
            inserts.append((rng.random(), line.format(v=leaders[0], n=1), True))
        answer = leaders[0]
    return LongTask(f"{kind}-{chars}-{i}", kind, question, answer, tuple(inserts), chars)


def _unsupported(rng: random.Random, split: str, i: int, chars: int) -> LongTask:
    if i % 3 == 2:  # a fact about a neighbour is there; the one asked for is not
        fact, question = _pick(rng, _ABSENT[split])
        key, other = rng.sample(_KEYS, 2)
        text = fact.format(key=key, num=rng.randrange(1000, 99999))
        return LongTask(
            f"unsupported-{chars}-{i}",
            "unsupported",
            question.format(other=other),
            None,
            ((rng.random(), text, False),),
            chars,
        )
    question = _UNSUPPORTED[split][i % len(_UNSUPPORTED[split])]
    return LongTask(f"unsupported-{chars}-{i}", "unsupported", question, None, (), chars)


def long_tasks(
    lengths: Sequence[int], *, kinds: Sequence[str] = KINDS, per_kind: int = 30, split: str = "dev", seed: int = 0
) -> Iterator[LongTask]:
    """``per_kind`` tasks of each kind at each length, in that order (same arguments, same tasks).

    Raises:
        ValueError: Unknown split or kind.
    """
    if split not in ("dev", "test"):
        msg = f"unknown split {split!r}; use dev or test"
        raise ValueError(msg)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        msg = f"unknown kinds {unknown}; use some of {', '.join(KINDS)}"
        raise ValueError(msg)
    rng = random.Random(f"{split}-{seed}")  # noqa: S311 - reproducible benchmark data, not secrets
    for chars in lengths:
        for kind in kinds:
            for i in range(per_kind):
                if kind == "lookup":
                    yield _lookup(rng, split, i, chars)
                elif kind == "chain":
                    yield _chain(rng, split, i, chars)
                elif kind == "unsupported":
                    yield _unsupported(rng, split, i, chars)
                else:
                    yield _records(rng, split, kind, i, chars)


def _lead(answer: str) -> str:
    """The short answer: the first paragraph of the result."""
    return answer.split("\n\n", 1)[0].strip()


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip(" .'\"").lower()


def score(task: LongTask, exit_reason: str, answer: str) -> bool:
    """Whether a result is right for ``task``: the right exit and the gold answer in the lead."""
    if task.kind == "unsupported":
        return exit_reason == "abstained"
    if exit_reason != "answered":
        return False
    lead = _norm(_lead(answer))
    if task.kind in ("lookup", "chain", "most"):
        gold = _norm(str(task.answer))
        return gold in lead and not any(_norm(w) in lead for w in task.wrong)
    if task.kind in ("distinct", "sum"):
        return lead == str(task.answer)
    return bool(sorted(_norm(v) for v in lead.split(",")) == task.answer)
