"""The eval-only response judge: answers pass, echo and template questions do not, and asking
for what the user already said fails."""

from __future__ import annotations

import pytest

from training.evaluate.judge import answers, judge_reply
from training.rewards.response import OfflineResponseJudge


@pytest.mark.parametrize(
    ("user", "reply"),
    [
        ("Any breakfast ideas?", "Any breakfast ideas?"),
        ("I love espressos. Any breakfast ideas?", "Espressos? Meaning?"),
        ("Any breakfast ideas?", "Good question. What do you usually eat in the morning?"),
        ("What should I do this evening?", "Do you have any pets?"),
        ("Can you suggest a book?", ""),
    ],
)
def test_a_reply_that_gives_nothing_fails_a_request(user: str, reply: str) -> None:
    assert not judge_reply(reply, user).passed


@pytest.mark.parametrize(
    ("user", "reply"),
    [
        ("Any breakfast ideas?", "Overnight oats with berries, or eggs on toast with spinach."),
        (
            "I'm vegetarian. What should I cook tonight?",
            "A chickpea curry with rice is quick and filling. Do you like spicy food?",
        ),
        ("thanks, that helps!", "Glad it helped, enjoy the trip and the food markets."),
    ],
)
def test_a_reply_that_answers_passes(user: str, reply: str) -> None:
    verdict = judge_reply(reply, user)
    assert verdict.passed, verdict.reasons


def test_answers_is_the_judges_test_of_a_reply_to_a_request_alone() -> None:
    request = "I'm vegetarian. What should I cook tonight?"
    asks_again = "A chickpea curry with rice is quick. Are you vegetarian?"
    assert answers(asks_again, request)  # gives something, though the judge fails it
    assert not judge_reply(asks_again, request, [("vegetarian",)]).passed
    assert not answers("What do you usually cook?", request)
    assert not answers("", request)


def test_asking_for_what_the_user_already_said_fails() -> None:
    known = [["daughter"], ["nurse"]]
    reply = "Try a dinosaur museum on Saturday. Do you have a daughter or son?"
    verdict = judge_reply(reply, "What can we do this weekend?", known)
    assert not verdict.passed and "daughter" in verdict.reasons[0]
    assert judge_reply("Try a dinosaur museum on Saturday.", "What can we do?", known).passed


def test_it_rejects_the_echo_question_the_training_reward_was_passed_by() -> None:
    history = [{"role": "user", "content": "I drink lots of espressos. Any breakfast ideas?"}]
    # The training reward's verdict, whatever it is, does not decide this one.
    OfflineResponseJudge().score("Espressos? Meaning?", history, [], [])
    assert not judge_reply("Espressos? Meaning?", history[0]["content"]).passed


def test_the_eval_judge_plugs_into_rlpa_eval_and_is_refused_as_a_reward() -> None:
    from training.components import make_judge
    from training.config import RLRunConfig
    from training.rl import make_scorer

    judge = make_judge("eval")
    history = [{"role": "user", "content": "I work as a nurse. Any ideas for dinner?"}]
    good = "A quick stir-fry with rice and vegetables fits a long shift."
    assert judge.score(good, history, ["works as a nurse"], []) == 1.0
    asks_again = "What do you do for work?  Are you a nurse?"
    assert judge.score(asks_again, history, ["works as a nurse"], []) == 0.0
    with pytest.raises(ValueError, match="not a training reward"):
        make_scorer(RLRunConfig(output_dir="unused", judge="eval", matcher="lexical"))
