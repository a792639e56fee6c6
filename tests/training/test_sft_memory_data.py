"""The SFT data teaches what people do with a memory, in the shares the recipe asks for: each kind
is counted in the generated conversations, and each is checked to be taught right."""

from __future__ import annotations

import re
from functools import cache

import pytest

from server.rlpa import apply_block, parse_output
from training.config import SFTRunConfig, load_config
from training.data.profiles import Trait
from training.dialogues import ANSWERS, AssistantTurn, second_person, simulate_dialogue
from training.sft import scripted_user
from training.simulators.others import PEOPLE

RECIPE = "sft_memory_cpu"
FORGET = re.compile(r"^forget\s*:", re.I)


@cache
def conversations() -> tuple[tuple[tuple[AssistantTurn, list[tuple[str, Trait | None]]], ...], ...]:
    """The recipe's conversations, each turn with what the user's message did."""
    from training.dialogues import training_profiles

    config = load_config(SFTRunConfig, RECIPE, {"output_dir": "unused"})
    profiles = training_profiles(None, config.num_profiles, config.profile_seed, "train")
    result = []
    for index, profile in enumerate(profiles):
        user = scripted_user(config)
        turns = []
        for turn in simulate_dialogue(
            profile, user, config.seed + index, config.max_turns, 2, config.carried_share
        ):
            turns.append((turn, user.events()))
        result.append(tuple(turns))
    return tuple(result)


def block(turn: AssistantTurn) -> list[str]:
    parsed = parse_output(turn.completion)
    assert parsed.profile is not None, turn.completion
    return parsed.profile


def reply(turn: AssistantTurn) -> str:
    return parse_output(turn.completion).response


def stored_before(turn: AssistantTurn) -> list[str]:
    """The stored profile the prompt shows the model for this turn."""
    system = turn.prompt[0]["content"]
    heading = "What you know about this user:"
    if heading not in system:
        return []
    return [line[2:] for line in system.split(heading)[-1].splitlines() if line.startswith("- ")]


def share(predicate) -> float:  # type: ignore[no-untyped-def]
    convs = conversations()
    return sum(1 for conv in convs if any(predicate(t, e) for t, e in conv)) / len(convs)


def kinds(events: list[tuple[str, Trait | None]]) -> set[str]:
    return {name for name, _ in events}


def test_the_recipe_generates_every_kind_in_a_real_share() -> None:
    forgets = share(lambda t, e: any(FORGET.match(line) for line in block(t)))
    assert forgets >= 0.10
    assert share(lambda t, e: "forget" in kinds(e)) >= 0.10
    assert share(lambda t, e: "private" in kinds(e)) >= 0.10
    assert share(lambda t, e: "change" in kinds(e)) >= 0.10
    assert share(lambda t, e: any(x in kinds(e) for x in ("recall", "forget_all"))) >= 0.08
    people = share(lambda t, e: any(r.kind == PEOPLE for r in t.revealed))
    assert people >= 0.15
    turns = [t for conv in conversations() for t, _ in conv]
    empty = sum(1 for t in turns if not block(t)) / len(turns)
    assert empty >= 0.2  # small talk, plain requests and memory questions change nothing


def test_a_forget_request_forgets_the_trait_and_it_never_comes_back() -> None:
    seen = 0
    for conv in conversations():
        for index, (turn, events) in enumerate(conv):
            for name, _ in events:
                if name != "forget":
                    continue
                seen += 1
                gone = [FORGET.sub("", line).strip() for line in block(turn) if FORGET.match(line)]
                assert gone, turn.completion
                before = stored_before(turn)
                assert all(g in before for g in gone)
                # From here on no target puts it back.
                profile = apply_block(2, before, block(turn))
                for later, _ in conv[index + 1 :]:
                    profile = apply_block(2, profile, block(later))
                    assert not set(gone) & set(profile)
    assert seen >= 10


def test_a_fact_said_not_to_be_stored_is_never_stored() -> None:
    seen = 0
    for conv in conversations():
        private: list[object] = []
        for turn, events in conv:
            private += [trait for name, trait in events if name == "private"]
            # From the message that says it on (an earlier conversation may have stored it:
            # then this turn forgets it).
            assert not set(private) & set(turn.revealed)
            assert all(getattr(p, "text", None) not in turn.profile for p in private)
        seen += bool(private)
    assert seen >= 10


def test_other_peoples_facts_are_stored_as_theirs() -> None:
    seen = 0
    for conv in conversations():
        for turn, _ in conv:
            for trait in turn.revealed:
                if trait.kind != PEOPLE or trait.text not in block(turn):
                    continue
                seen += 1
                assert trait.text.startswith("has a"), trait.text
                relation = trait.value.split(":")[0]
                noun = {"oldest": "son", "youngest": "daughter"}.get(relation, relation)
                assert noun in trait.text
    assert seen >= 20


def test_requests_are_answered_and_plain_ones_change_nothing() -> None:
    asked = answered = plain = 0
    for conv in conversations():
        said: list[object] = []
        for turn, events in conv:
            message = turn.prompt[-1]["content"].lower()
            answers = [a for opener, a in ANSWERS.items() if opener.lower().rstrip("?.") in message]
            new = [t for t in turn.revealed if t not in said]
            said += new
            if answers:
                asked += 1
                answered += any(a in reply(turn) for a in answers[0])
            if kinds(events) == {"request"} and not new:
                plain += 1
                assert block(turn) == [], turn.completion
    assert asked >= 50 and plain >= 10
    assert answered == asked
    # An answer is followed by a question back only sometimes.
    every_answer = [a for group in ANSWERS.values() for a in group]
    questions = sum(
        1
        for conv in conversations()
        for turn, _ in conv
        if any(a in reply(turn) for a in every_answer) and reply(turn).endswith("?")
    )
    assert questions / asked < 0.6


@pytest.mark.parametrize("command", ["recall", "forget_all"])
def test_memory_commands_are_answered_from_the_stored_profile(command: str) -> None:
    seen = 0
    for conv in conversations():
        for turn, events in conv:
            if command not in kinds(events):
                continue
            before = stored_before(turn)
            if command == "recall":
                assert block(turn) == []
                for trait in before:
                    assert second_person(trait) in reply(turn)
                if not before:
                    assert "anything" in reply(turn) or "Nothing" in reply(turn)
            else:
                gone = [FORGET.sub("", line).strip() for line in block(turn)]
                assert sorted(gone) == sorted(before)
            seen += 1
    assert seen >= 3
