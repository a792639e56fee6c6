from __future__ import annotations

import subprocess
import sys

import pytest

from server.rlpa import render_output
from training.data import Trait
from training.rewards import (
    LexicalMatcher,
    OfflineResponseJudge,
    make_profile_reward,
    make_response_reward,
    profile_reward,
    response_reward,
    total_reward,
)

HISTORY = [{"role": "user", "content": "any quick dinner ideas? I'm vegan"}]
REVEALED = [Trait("diet", "vegan", "is vegan")]
GOOD = render_output(["is vegan"], "A vegan chickpea curry is quick. Want the recipe?")
BROKEN = "is vegan\nA vegan chickpea curry is quick. Want the recipe?"
LEXICAL = LexicalMatcher()


def test_a_completion_that_breaks_the_format_scores_zero_on_both_rewards() -> None:
    columns = {"true_profile": [["is vegan"]], "history": [HISTORY], "revealed": [REVEALED]}

    assert profile_reward([BROKEN], columns["true_profile"], LEXICAL) == [0.0]
    assert response_reward([BROKEN], columns["history"], columns["revealed"]) == [0.0]
    assert total_reward([BROKEN], **columns, matcher=LEXICAL) == [0.0]


def test_a_correct_profile_and_a_good_reply_earn_the_full_two_points() -> None:
    assert total_reward([GOOD], [["is vegan"]], [HISTORY], [REVEALED], matcher=LEXICAL) == [2.0]


def test_each_completion_is_scored_against_its_own_gold_profile() -> None:
    completions = [
        render_output(["is vegan"], "Sure."),
        render_output(["is vegan"], "Sure."),
        render_output([], "Sure."),
    ]
    gold = [["is vegan"], ["lives in Oslo"], []]

    assert profile_reward(completions, gold, LEXICAL) == [1.0, 0.0, 1.0]


def test_response_reward_judges_the_reply_not_the_profile_block() -> None:
    flattering_profile = render_output(["is amazing, great question"], "A vegan curry is quick.")
    flattering_reply = render_output(["is vegan"], "Great question! A vegan curry is quick.")

    rewards = response_reward([flattering_profile, flattering_reply], [HISTORY] * 2, [REVEALED] * 2)

    assert rewards == [1.0, 0.0]


def test_conversational_completions_are_read_like_plain_text() -> None:
    completion = [{"role": "assistant", "content": GOOD}]

    assert profile_reward([completion], [REVEALED], LEXICAL) == [1.0]


def test_gold_traits_may_come_as_dataset_dicts() -> None:
    gold = [[{"kind": "diet", "value": "vegan", "text": "is vegan"}]]

    assert profile_reward([GOOD], gold, LEXICAL) == [1.0]


def test_columns_must_line_up_with_completions() -> None:
    with pytest.raises(ValueError, match="2 completions but 1 true_profile"):
        profile_reward([GOOD, GOOD], [["is vegan"]], LEXICAL)


def test_bound_rewards_take_trl_style_keyword_columns_and_carry_names() -> None:
    profile = make_profile_reward(LEXICAL)
    response = make_response_reward(OfflineResponseJudge())
    columns = {"prompts": ["p"], "true_profile": [["is vegan"]], "history": [HISTORY]}

    assert profile([GOOD], **columns) == [1.0]
    assert response([GOOD], **columns, revealed=[REVEALED]) == [1.0]
    assert (profile.__name__, response.__name__) == ("profile", "response")


def test_importing_the_training_package_loads_no_model_libraries() -> None:
    code = (
        "import sys, training.data, training.simulators, training.rewards; "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'scipy', 'transformers') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "[]"
