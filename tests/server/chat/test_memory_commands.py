"""Memory commands recognised in a user's message (server/chat/memory_commands.py): what each
message asks of the memory, and which stored traits a forget removes."""

from __future__ import annotations

import pytest

from server import rlpa
from server.chat.memory_commands import Command, change, recognise, reply, retired


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("What do you remember about me?", "recall"),
        ("hey, what do you know about me so far", "recall"),
        ("Can you show me what you have stored about me?", "recall"),
        ("what's in your memory about me?", "recall"),
        ("Please forget everything you know about me.", "forget_all"),
        ("Forget everything about me, please.", "forget_all"),
        ("ok, wipe my memory", "forget_all"),
        ("Please forget that I have kids, that's private", "forget"),
        ("Oh wait - scrap what I said about the bakery.", "forget"),
        ("Hmm, take that back.", "forget"),
        ("Don't save this: I'm on antidepressants. How do I sleep better?", "dont_store"),
        ("I have asthma. Don't keep that.", "dont_store"),
        ("Off the record, my boss drinks at lunch. Any tips for a quiet word?", "dont_store"),
    ],
)
def test_commands_are_recognised(message: str, kind: str) -> None:
    command = recognise(message)
    assert command is not None and command.kind == kind


@pytest.mark.parametrize(
    "message",
    [
        "I always forget to water the plants, any hardy ones?",
        "I don't remember the name of the film, it had a tiger on a boat",
        "Don't forget I'm vegan!",
        "We never keep receipts, is that a problem for taxes?",
        "What do you know about the Roman empire?",
        "Forget everything you've heard about keto, what actually works?",
        "Can you remember me to my sister?",
        "",
    ],
)
def test_ordinary_messages_are_not_commands(message: str) -> None:
    """Facts about the user's own memory, and questions about other things, are left alone."""
    assert recognise(message) is None


def test_only_the_command_or_more() -> None:
    """The gateway answers a message that is only the command; one that asks or says more is
    the model's to answer."""
    assert recognise("Please forget that I have kids, that's private").only  # type: ignore[union-attr]
    asks = recognise("Don't save this: I'm on antidepressants. How do I sleep better?")
    assert asks is not None and not asks.only and asks.keeps_nothing_new


STORED = [
    "is a nurse in Seattle",
    "has two kids, Tomás and Ana",
    "their sister Maja lives in Oslo",
    "likes hiking with the kids",
    "has £40,000 in an ISA",
]


def _command(message: str) -> Command:
    command = recognise(message)
    assert command is not None, message
    return command


def test_forget_removes_the_trait_it_names() -> None:
    command = _command("Please forget what I told you about Maja.")
    assert retired(command, STORED) == ["their sister Maja lives in Oslo"]


def test_a_word_many_traits_hold_removes_nothing_alone() -> None:
    """ "kids" is in two traits and names both: they go; "the" is in none and names nothing."""
    both = retired(_command("Please forget that I have kids, that's private"), STORED)
    assert both == ["has two kids, Tomás and Ana", "likes hiking with the kids"]
    crowded = [*STORED, "the kids go to Lakeside school"]
    assert retired(_command("Please forget that I have kids"), crowded) == []


def test_forget_that_is_about_the_previous_message() -> None:
    command = _command("Strike that number from your records, if you would.")
    previous = "I've got about £40,000 sitting in an ISA, is that silly?"
    assert retired(command, STORED, previous) == ["has £40,000 in an ISA"]


def test_dont_store_with_a_request_keeps_nothing_new_and_removes_nothing() -> None:
    command = _command("Don't save this: my sister Maja is pregnant. What gift for her?")
    model = rlpa.ProfileChange(add=("their sister Maja is pregnant",), remove=())
    assert change(command, STORED, model) == rlpa.ProfileChange()


def test_a_correction_after_scratch_that_keeps_the_new_value() -> None:
    """ "Scratch that" with the new value in the same message: the model's addition stays."""
    command = _command("Ugh, scratch that, the move is now on the 2nd of September.")
    model = rlpa.ProfileChange(add=("is moving on the 2nd of September",))
    assert change(command, STORED, model).add == ("is moving on the 2nd of September",)


def test_forget_all_and_recall() -> None:
    forget_all = _command("Forget everything about me.")
    assert change(forget_all, STORED, rlpa.ProfileChange()).apply(STORED) == []
    assert "forgotten everything" in reply(forget_all, STORED, STORED)
    recall = _command("What do you remember about me?")
    text = reply(recall, STORED, [])
    assert all(trait[1:] in text for trait in STORED)
    assert reply(recall, [], []) == "I don't have anything stored about you yet."


@pytest.mark.parametrize(
    ("message", "only"),
    [
        ("Please forget that I have kids, that's private", True),
        ("Take out the part about the custody thing. Solicitor's orders.", True),
        ("Ugh, scratch that, we live in Porto now.", False),
        ("Scratch that, the move is on the 2nd of September.", False),
        ("We moved to Porto, so forget what I said about Lisbon.", False),
        ("Can you drop what I told you about Maja? It's done.", True),
    ],
)
def test_a_new_value_makes_it_more_than_a_command(message: str, only: bool) -> None:
    """A reason in a few words leaves the message only a command; a value (a name, a number)
    or a question means the model answers it and stores what it says."""
    command = recognise(message)
    assert command is not None and command.only is only


def test_what_a_forget_is_about_is_not_written_again() -> None:
    command = _command("Oh, forget I said that about Yaron's job, he'd hate it. Any cake ideas?")
    model = rlpa.ProfileChange(add=("brother-in-law Yaron lost his job", "is baking a cake"))
    assert change(command, STORED, model).add == ("is baking a cake",)


def test_a_story_then_dont_save_is_answered_by_the_model() -> None:
    """Something new, then "leave that out": the model answers what was said, nothing of it is
    kept, and no stored trait is removed for sharing a word with the story."""
    command = _command(
        "Off to a wedding in Split in July and worried about the food. I have coeliac "
        "disease - please leave that out of whatever you save."
    )
    assert not command.only and command.keeps_nothing_new
    assert retired(command, [*STORED, "loves food markets"]) == []
