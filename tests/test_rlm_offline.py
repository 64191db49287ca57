"""The recursive agent without a model: lookups, two-hop chains, aggregation over records, and the
questions it declines, each with the exit it earns; and the tools the plan uses (grep into a
buffer, the record pattern, the new aggregate ops, submit with abstain)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from agents.rlm_agent import RlmAgent
from agents.testing import ScriptedChatModel, function_model
from graphs.broker import RlmLimits
from graphs.llm import RetryPolicy
from tools.context import aggregate, grep_items, record_pattern
from tools.questions import plural_pattern

FILLER = (
    "Startups grow by making something people want. Most founders underestimate how long it takes. "
    "Good ideas often look like bad ideas at first, which is why so few people pursue them.\n\n"
)
LUMEN = (
    "# Lumen\n\nThe Lumen bridge opened in 1902 and was designed by Ada Vell.\n\n"
    "# Ada Vell\n\nAda Vell was an engineer; she was born in 1889 in Tarn."
)
FAST = RetryPolicy(max_attempts=1, initial_wait=0.01, max_wait=0.01, jitter=0.0)


def offline() -> RlmAgent:
    return RlmAgent(limits=RlmLimits(sub_context_chars=5_000))


def scatter(lines: list[str], *, filler: int = 60, seed: int = 3) -> str:
    """``lines`` spread through filler paragraphs, each on a line of its own."""
    import random

    rng = random.Random(seed)
    paragraphs = [FILLER.strip()] * filler
    for line in lines:
        paragraphs.insert(rng.randrange(len(paragraphs) + 1), line)
    return "\n\n".join(paragraphs)


# -- chains ------------------------------------------------------------------------------------


def test_a_two_hop_question_follows_the_bridge_and_shows_the_chain() -> None:
    result = offline().invoke("Where was the designer of the Lumen bridge born?", context=LUMEN)
    assert result.exit_reason == "answered"
    short, evidence = result.answer.split("\n\n", 1)
    assert short == "Tarn"  # not the bridge's opening year, not the "# Lumen" heading
    assert "designed by Ada Vell" in evidence
    assert "born in 1889 in Tarn" in evidence
    notes = [n.get("note", "") for n in result.trace if n["kind"] == "root"]
    assert any("follow 'Ada Vell'" in n for n in notes)  # the hop is in the trace


def test_a_chain_with_distractors_takes_the_asked_object_only() -> None:
    facts = [
        "In the end the amber telescope passed to Nadia Hartigan.",
        "Nadia Hartigan keeps everything of value in a hatbox on the wardrobe.",
        "The jade telescope was given to Katia Marsh.",
        "Katia Marsh keeps everything of value in the attic above the mill.",
        "The brass telescope was given to Cosmo Galloway.",
        "Cosmo Galloway stores her belongings in the hayloft of the east barn.",
    ]
    text = scatter(facts)
    result = offline().invoke("Where does the person who was given the amber telescope keep it?", context=text)
    assert result.exit_reason == "answered"
    assert result.answer.startswith("a hatbox on the wardrobe")


def test_a_chain_whose_second_hop_is_missing_abstains_with_the_first_hop() -> None:
    text = scatter(["The silver compass was given to Orla Fenn."])
    result = offline().invoke("Where does the person who received the silver compass keep it?", context=text)
    assert result.exit_reason == "abstained"
    assert "Orla Fenn" in result.answer  # the reason names the bridge it could not follow
    assert result.partial_answer == "The silver compass was given to Orla Fenn."


# -- aggregation -------------------------------------------------------------------------------

SHIPS = ["Aurora", "Kestrel Dawn", "Aurora", "Sea Wren", "Polaris", "Aurora", "Sea Wren"]


def harbour() -> str:
    records = [f"HARBOUR LOG | vessel: {v} | berth {i}" for i, v in enumerate(SHIPS)]
    other = [f"HARBOUR LOG | cargo: timber | berth {i}" for i in range(5)]
    prose = ["A vessel is only as good as its crew, the old saying goes."]
    return scatter(records + other + prose)


@pytest.mark.parametrize(
    ("question", "short"),
    [
        ("How many distinct vessels are recorded in the log?", "4"),
        ("List all the vessels recorded.", "Aurora, Kestrel Dawn, Polaris, Sea Wren"),
        ("Which vessel appears most often?", "Aurora"),
        ("How many times is a vessel logged?", "7"),
    ],
)
def test_aggregates_over_repeated_records(question: str, short: str) -> None:
    result = offline().invoke(question, context=harbour())
    assert result.exit_reason == "answered", result.answer
    lead = result.answer.split("\n\n")[0]
    assert (", ".join(sorted(lead.split(", "))) if "," in lead else lead) == short  # a list comes in text order
    tools = [t for n in result.trace if n["kind"] == "root" for t in n.get("tools", [])]
    assert tools.count("grep") == 2
    assert "aggregate" in tools


def test_sums_a_count_field() -> None:
    text = scatter([f"Delivery note: {n} crates from Marlow Farm." for n in (12, 3, 40)] + ["Delivery note: late van."])
    result = offline().invoke("How many crates were delivered in total?", context=text)
    assert result.exit_reason == "answered"
    assert result.answer.split("\n\n")[0] == "55"


def test_no_repeated_records_means_abstain() -> None:
    result = offline().invoke("How many distinct vessels are recorded?", context=scatter(["A vessel sailed."]))
    assert result.exit_reason == "abstained"
    assert "no repeated records" in result.answer


# -- lookups and declines ----------------------------------------------------------------------


def test_a_lookup_leads_with_the_span() -> None:
    text = scatter(["Old papers say the falcon bell was cast by Edda Ashby."])
    result = offline().invoke("Who forged the falcon bell?", context=text)  # "forged" is not in the text: wording
    assert result.exit_reason == "answered"
    assert result.answer.split("\n\n")[0] == "Edda Ashby"


def test_a_near_miss_is_not_an_answer() -> None:
    text = scatter(["The access code for the walrus locker is 4471."])
    result = offline().invoke("What is the access code for the teapot locker?", context=text)
    assert result.exit_reason == "abstained"
    assert result.partial_answer == "The access code for the walrus locker is 4471."
    assert "4471" not in result.answer


def test_a_sentence_without_the_asked_kind_is_not_an_answer() -> None:
    text = scatter(["The walrus archive has a famous reading room."])
    result = offline().invoke("When did the walrus archive open?", context=text)
    assert result.exit_reason == "abstained"
    assert "holds no date" in result.answer


@pytest.mark.parametrize(
    ("question", "why"),
    [
        ("Summarise the essays in three sentences.", "cannot summarise"),
        ("Why do startups grow by making something people want?", "cannot explain"),
        ("Compare the first essay with the last one.", "cannot compare"),
    ],
)
def test_questions_it_cannot_do_offline_are_declined(question: str, why: str) -> None:
    result = offline().invoke(question, context=FILLER * 40)
    assert result.exit_reason == "abstained"
    assert why in result.answer
    assert "ARAG_CHAT_MODEL" in result.answer


# -- the tools the plan uses -------------------------------------------------------------------


def test_grep_items_by_unit_and_capture_group() -> None:
    text = "Intro line.\nLOG | vessel: Aurora | berth 4\nMore text. The vessel Tern docked at noon. End."
    lines, timed_out = grep_items(text, r"vessel", unit="line")
    assert not timed_out
    assert [i["result"] for i in lines] == ["LOG | vessel: Aurora | berth 4", lines[1]["result"]]
    sentences, _ = grep_items(text, r"vessel Tern", unit="sentence")
    assert sentences[0]["result"] == "The vessel Tern docked at noon."
    values, _ = grep_items(text, r"vessel:\s*(?P<value>\w+)")
    assert [v["result"] for v in values] == ["Aurora"]
    assert values[0]["chunk"] == f"@{text.index('vessel:')}"
    with pytest.raises(ValueError, match="unknown grep unit"):
        grep_items(text, "x", unit="page")
    with pytest.raises(ValueError, match="invalid regular expression"):
        grep_items(text, "(")


def test_record_pattern_shapes() -> None:
    keyed = record_pattern(
        ["[note] species=grey heron; count 3", "[note] species=barn owl; count 1", "[note] species=Grey Heron; n 2"],
        plural_pattern("species"),
    )
    assert keyed is not None
    assert keyed.shape == "keyed"
    assert keyed.values == ("grey heron", "barn owl", "Grey Heron")
    named = record_pattern(
        ["At dawn the courier Blue Fox came.", "Late the courier Red Kite came.", "Then the courier Blue Fox left."],
        plural_pattern("couriers"),
    )
    assert named is not None
    assert named.shape == "named"
    assert named.values[1] == "Red Kite"
    counts = record_pattern(["got 12 sacks", "got 3 sacks", "got 1,200 sacks"], plural_pattern("sacks"), numeric=True)
    assert counts is not None
    assert counts.values == ("12", "3", "1,200")
    assert record_pattern(["A courier is a job.", "the courier Blue Fox"], plural_pattern("courier")) is None


def test_new_aggregate_ops() -> None:
    items = [{"result": r} for r in ["Aurora", "aurora.", "Tern", "Sea Wren", "Tern", "Aurora", "", "NONE"]]
    assert aggregate(items, "distinct").value == 3
    assert aggregate(items, "set").value == ["Aurora", "Tern", "Sea Wren"]
    assert aggregate(items, "most").value == {"value": "Aurora", "count": 3, "ties": []}
    assert aggregate(items, "least").value == {"value": "Sea Wren", "count": 1, "ties": []}
    numbers = [{"result": r} for r in ["12", "1,200 sacks", "three", "4.5"]]
    assert aggregate(numbers, "sum").value == {"sum": 1216.5, "numbers": 3, "skipped": 1}


def call(name: str, call_id: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def test_a_model_root_can_grep_into_a_buffer_and_abstain() -> None:
    text = harbour()
    root = ScriptedChatModel(
        responses=[
            AIMessage(
                content="",
                tool_calls=[
                    call("grep", "g1", pattern=r"vessel:\s*(?P<value>[^|]+?)\s*\|", buffer="ships", k=1),
                    call("aggregate", "a1", buffer="ships", op="distinct"),
                ],
            ),
            AIMessage(
                content="", tool_calls=[call("submit", "s1", text="4 ships, maybe", abstain=True, reason="unsure")]
            ),
        ]
    )
    result = RlmAgent(root, sub_model=function_model(lambda _m: "NONE"), retry=FAST).invoke("How many?", context=text)
    replies = {m.tool_call_id: str(m.content) for m in root.prompts[1] if m.type == "tool"}
    assert replies["g1"].startswith("7 matches; 7 items (match) in buffer 'ships'")
    assert json.loads(replies["a1"]) == 4
    assert result.exit_reason == "abstained"
    assert result.partial_answer == "4 ships, maybe"
    assert "unsure" in result.answer
