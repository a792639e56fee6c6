from __future__ import annotations

import pytest

from tests.training.fakes import FakeEndpoint
from training.data import Trait
from training.rewards.response import LLMKeepChattingJudge, OfflineResponseJudge

HISTORY = [
    {"role": "user", "content": "hey, need ideas for dinner tonight"},
    {"role": "assistant", "content": "Sure! Do you want something quick or something fancy?"},
    {"role": "user", "content": "quick. I'm vegan btw"},
]
VEGAN = Trait("diet", "vegan", "is vegan")


def verdict(
    reply: str, history: list[dict[str, str]] = HISTORY, revealed: tuple[Trait, ...] = (VEGAN,)
) -> list[str]:
    return OfflineResponseJudge().failures(reply, history, list(revealed))


def test_a_short_relevant_reply_that_uses_what_the_user_said_passes() -> None:
    reply = "A quick vegan chickpea curry takes twenty minutes. Want the recipe?"

    assert verdict(reply) == []
    assert OfflineResponseJudge().score(reply, HISTORY, [VEGAN]) == 1.0


def test_repeating_an_earlier_reply_fails() -> None:
    assert "repetition" in verdict("Sure! Do you want something quick or something fancy?")


def test_flattery_fails() -> None:
    assert "flattery" in verdict("Great question! A quick vegan stir-fry works well.")


def test_an_overlong_reply_fails() -> None:
    reply = "A quick vegan chickpea curry is easy. " * 15

    assert "too long" in verdict(reply)


def test_lists_and_markup_fail() -> None:
    reply = "Quick vegan ideas:\n- chickpea curry\n- tofu stir-fry"

    assert "not natural" in verdict(reply)
    assert "not natural" in verdict("**Vegan** curry, quick and easy.")


def test_an_off_topic_statement_fails_but_a_question_back_passes() -> None:
    history = [{"role": "user", "content": "any tips for sleeping better?"}]

    assert "does not answer" in verdict("The stock market rose today.", history, ())
    assert verdict("Is it falling asleep or staying asleep that's hard?", history, ()) == []


def test_ignoring_a_relevant_revealed_trait_fails() -> None:
    history = [{"role": "user", "content": "what should I cook for dinner?"}]

    assert "ignores what the user said" in verdict("Cook a steak dinner with fries.", history)
    assert verdict("Cook a vegan lentil dinner, it's filling.", history) == []


def test_a_revealed_trait_is_not_required_when_the_topic_is_unrelated() -> None:
    history = [{"role": "user", "content": "what's a good book to read?"}]

    assert verdict("Try a short mystery book, like an Agatha Christie.", history) == []


def test_keep_chatting_judge_plays_the_user_it_was_inferred_to_be() -> None:
    endpoint = FakeEndpoint("Yes.")
    judge = LLMKeepChattingJudge("http://judge/v1", "judge-model", client=endpoint.client())

    score = judge.score("Try a vegan curry.", HISTORY, [VEGAN], ["is vegan", "likes quick meals"])

    prompt = endpoint.body["messages"][0]["content"]
    assert score == 1.0
    assert "- is vegan\n- likes quick meals" in prompt
    assert "Your last message: quick. I'm vegan btw" in prompt
    assert "The assistant's reply: Try a vegan curry." in prompt
    assert "You: hey, need ideas for dinner tonight" in prompt
    assert "quick. I'm vegan btw" not in prompt.split("Your last message")[0]
    assert "yes or no" in prompt


@pytest.mark.parametrize(("answer", "score"), [("No.", 0.0), ("yes", 1.0), ("maybe later", 0.0)])
def test_keep_chatting_judge_reads_yes_and_no(answer: str, score: float) -> None:
    judge = LLMKeepChattingJudge("http://j/v1", "m", client=FakeEndpoint(answer).client())

    assert judge.score("Try a vegan curry.", HISTORY, [], []) == score
