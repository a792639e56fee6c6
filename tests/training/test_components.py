"""The one factory of simulators, matchers and judges that training and evaluation share."""

from __future__ import annotations

import pytest

from training import components
from training.components import Endpoint, make_judge, make_matcher, make_simulator
from training.rewards import LexicalMatcher, LLMJudgeMatcher, OfflineResponseJudge
from training.simulators import LLMUser, ScriptedUser


def test_names_build_the_same_pieces_for_every_stage() -> None:
    user = make_simulator("scripted", share=0.3, opener_fact_share=1.0)()
    assert isinstance(user, ScriptedUser) and (user.share, user.opener_fact_share) == (0.3, 1.0)
    assert make_matcher("lexical", threshold=0.7).threshold == 0.7
    assert isinstance(make_matcher("lexical"), LexicalMatcher)
    assert isinstance(make_judge("offline"), OfflineResponseJudge)
    endpoint = Endpoint("http://127.0.0.1:9/v1", "judge-model")
    assert isinstance(make_matcher("llm", endpoint), LLMJudgeMatcher)
    assert isinstance(make_simulator("llm", endpoint, share=0.2)(), LLMUser)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: make_matcher("fuzzy"), "matcher must be one of"),
        (lambda: make_judge("llm"), "judge=llm needs an endpoint"),
        (lambda: make_simulator("llm"), "simulator=llm needs an endpoint"),
    ],
)
def test_unknown_names_and_missing_endpoints_are_clear_errors(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_rl_and_eval_build_through_it() -> None:
    from training import rl
    from training.evaluate import protocol

    assert rl.make_matcher is components.make_matcher
    assert protocol.make_judge is components.make_judge
