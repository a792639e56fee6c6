from __future__ import annotations

import pytest

from tests.training.fakes import FakeEndpoint
from training.rewards.profile import (
    EmbeddingMatcher,
    LexicalMatcher,
    LLMJudgeMatcher,
    f1,
    profile_f1,
)
from training.text import names_conflict


def test_f1_is_twice_the_matches_over_both_sizes() -> None:
    assert f1(2, 4, 6) == pytest.approx(0.4)
    assert f1(3, 3, 3) == 1.0
    assert f1(0, 5, 2) == 0.0


def test_an_empty_profile_is_right_when_nothing_was_revealed() -> None:
    assert profile_f1([], [], LexicalMatcher()) == 1.0


def test_guessing_before_anything_was_revealed_scores_zero() -> None:
    assert profile_f1(["is a nurse"], [], LexicalMatcher()) == 0.0
    assert profile_f1([], ["is a nurse"], LexicalMatcher()) == 0.0


def test_f1_rejects_more_matches_than_traits() -> None:
    with pytest.raises(ValueError):
        f1(3, 2, 5)


def test_lexical_matcher_counts_each_true_trait_once() -> None:
    matcher = LexicalMatcher()

    assert matcher.match(["enjoys hiking", "loves hiking"], ["enjoys hiking"]) == 1
    assert matcher.match(["enjoys hiking", "is vegan"], ["is a vegan", "enjoys hiking"]) == 2
    assert matcher.match(["owns a boat"], ["enjoys hiking"]) == 0


def test_profile_score_falls_as_wrong_traits_are_added() -> None:
    true = ["enjoys hiking", "is vegan"]
    matcher = LexicalMatcher()

    exact = profile_f1(["enjoys hiking", "is vegan"], true, matcher)
    padded = profile_f1(["enjoys hiking", "is vegan", "owns a boat", "plays chess"], true, matcher)

    assert exact == 1.0
    assert padded == pytest.approx(2 * 2 / 6)


def test_different_names_or_numbers_never_match() -> None:
    assert names_conflict("lives in Seattle", "lives in Portland")
    assert names_conflict("is 33 years old", "is 34 years old")
    assert names_conflict("has two kids", "has 3 kids")
    assert not names_conflict("lives in Seattle", "is based in Seattle")
    assert not names_conflict("has two kids", "has 2 children")
    assert not names_conflict("lives in Seattle", "lives in a big city")


@pytest.mark.slow
def test_embedding_matcher_matches_a_paraphrase_offline() -> None:
    matcher = EmbeddingMatcher()

    assert matcher.match(["works as a nurse"], ["is a nurse"]) == 1
    assert matcher.match(["works as a nurse"], ["is a teacher"]) == 0


@pytest.mark.slow
def test_embedding_matcher_keeps_seattle_and_portland_apart() -> None:
    matcher = EmbeddingMatcher()

    assert matcher.match(["lives in Seattle"], ["lives in Portland"]) == 0
    # The guarded pair must not cost the good one its match.
    inferred, true = ["works as a nurse", "lives in Seattle"], ["is a nurse", "lives in Portland"]
    assert matcher.match(inferred, true) == 1


def test_llm_judge_matcher_asks_for_a_count_and_reads_fenced_json() -> None:
    endpoint = FakeEndpoint('Sure.\n```json\n{"matches": 2}\n```')
    matcher = LLMJudgeMatcher("http://judge/v1", "judge-model", client=endpoint.client())

    count = matcher.match(["is a nurse", "likes tea", "owns a boat"], ["works as a nurse", "tea"])

    prompt = endpoint.body["messages"][0]["content"]
    assert count == 2
    assert endpoint.body["model"] == "judge-model"
    assert endpoint.body["temperature"] == 0.0
    assert "1. is a nurse" in prompt and "2. tea" in prompt
    assert '{"matches": <number>}' in prompt


@pytest.mark.parametrize(
    ("answer", "count"), [("I count 7 matches.", 2), ("no idea", 0), ('{"matches": -3}', 0)]
)
def test_llm_judge_matcher_answers_are_clamped_to_what_is_possible(answer: str, count: int) -> None:
    matcher = LLMJudgeMatcher("http://judge/v1", "m", client=FakeEndpoint(answer).client())

    assert matcher.match(["a", "b"], ["c", "d", "e"]) == count


def test_llm_judge_is_not_asked_about_an_empty_profile() -> None:
    endpoint = FakeEndpoint('{"matches": 1}')
    matcher = LLMJudgeMatcher("http://judge/v1", "m", client=endpoint.client())

    assert matcher.match([], ["is a nurse"]) == 0
    assert endpoint.requests == []
