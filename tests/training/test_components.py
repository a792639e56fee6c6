"""The one factory of simulators, matchers and judges that training and evaluation share."""

from __future__ import annotations

import pytest

from training import components
from training.components import make_judge, make_matcher, make_simulator
from training.endpoint import Endpoint
from training.rewards import LexicalMatcher, LLMJudgeMatcher, OfflineResponseJudge
from training.simulators import LLMUser, ScriptedUser


def test_names_build_the_same_pieces_for_every_stage() -> None:
    user = make_simulator("scripted", share=0.3, opener_fact_share=1.0)()
    assert isinstance(user, ScriptedUser) and (user.share, user.opener_fact_share) == (0.3, 1.0)
    assert make_matcher("lexical", threshold=0.7).threshold == 0.7
    assert isinstance(make_matcher("lexical"), LexicalMatcher)
    assert isinstance(make_judge("offline"), OfflineResponseJudge)
    endpoint = Endpoint(url="http://127.0.0.1:9/v1", model="judge-model")
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


def test_rl_and_eval_declare_the_pieces_and_the_endpoint_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from training.config import RLRunConfig
    from training.evaluate.config import EvalConfig
    from training.recipe import load_config

    assert issubclass(RLRunConfig, components.ComponentArgs)
    assert issubclass(EvalConfig, components.ComponentArgs)
    endpoint = {
        "endpoint_url": "http://127.0.0.1:9/v1",
        "endpoint_model": "judge",
        "endpoint_api_key_env": "RLPA_TEST_JUDGE_KEY",
        "endpoint_concurrency": 3,
    }
    monkeypatch.setenv("RLPA_TEST_JUDGE_KEY", "sk-test")
    for cls, recipe in ((RLRunConfig, "rl_tiny"), (EvalConfig, "eval_tiny")):
        config = load_config(cls, recipe, {**endpoint, "judge": "llm"})
        assert config.endpoint() == Endpoint(
            url="http://127.0.0.1:9/v1", model="judge", api_key_env="RLPA_TEST_JUDGE_KEY",
            concurrency=3,
        )  # fmt: skip
        assert config.endpoint().api_key() == "sk-test"  # from the environment, never a recipe
        assert load_config(cls, recipe).endpoint() is None
        with pytest.raises(ValueError, match="judge must be one of"):
            load_config(cls, recipe, {"judge": "gpt"})
