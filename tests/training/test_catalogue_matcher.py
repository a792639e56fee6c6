"""Evaluation's phrasing-independent matcher for catalogue users."""

from __future__ import annotations

import pytest

from training.components import make_matcher
from training.data import generate_profiles
from training.evaluate.catalogue_matcher import CatalogueMatcher
from training.rewards import LexicalMatcher
from training.rewards.profile import profile_f1


def test_any_phrasing_of_the_value_matches_the_gold_trait() -> None:
    matcher = CatalogueMatcher()
    assert matcher.match(["doesn't eat meat"], ["is vegetarian"]) == 1
    assert LexicalMatcher().match(["doesn't eat meat"], ["is vegetarian"]) == 0
    assert matcher.match(["is vegan"], ["is vegetarian"]) == 0  # another value is another fact
    assert matcher.match(["lives in Oslo"], ["lives in Seattle"]) == 0


def test_a_perfect_model_scores_1_whatever_phrasing_each_profile_drew() -> None:
    matcher = CatalogueMatcher()
    for profile in generate_profiles(40, seed=7):
        gold = profile.texts()
        said = [matcher.options(t)[-2] for t in gold]  # a different phrasing where one exists
        assert profile_f1(said, gold, matcher) == pytest.approx(1.0), (said, gold)


def test_it_is_for_evaluation_only() -> None:
    from training.config import RLRunConfig
    from training.rl import make_scorer

    assert isinstance(make_matcher("catalogue"), CatalogueMatcher)
    config = RLRunConfig(output_dir="unused", matcher="catalogue", report_to="none")
    with pytest.raises(ValueError, match="not a training reward"):
        make_scorer(config)
