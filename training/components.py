"""The one factory for the pieces a stage plugs together: simulated users, profile matchers and
response judges, by name, and `ComponentArgs`, the config fields that name them and their
endpoint. Training (`rl`) and evaluation (`eval`) both declare theirs with `ComponentArgs` and
build them here, so a name means the same thing in every recipe."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from training.endpoint import Endpoint

if TYPE_CHECKING:
    from training.rewards import Matcher, ResponseJudge
    from training.simulators import UserSimulator

SimulatorName = Literal["scripted", "llm"]
# catalogue (the matcher) and eval (the judge) measure only: RL refuses them as rewards.
MatcherName = Literal["lexical", "embedding", "llm", "catalogue"]
JudgeName = Literal["offline", "llm", "eval"]
SIMULATORS: tuple[str, ...] = get_args(SimulatorName)
MATCHERS: tuple[str, ...] = get_args(MatcherName)
JUDGES: tuple[str, ...] = get_args(JudgeName)


@dataclass
class ComponentArgs:
    """Config fields (RL's and eval's): the simulated user, the profile matcher, the response
    judge, and the one OpenAI-compatible endpoint the `llm` ones call."""

    simulator: SimulatorName = "scripted"
    matcher: MatcherName = "lexical"
    judge: JudgeName = "offline"
    endpoint_url: str | None = field(
        default=None, metadata={"help": "OpenAI-compatible /v1 URL for the llm user/matcher/judge"}
    )
    endpoint_model: str | None = None
    endpoint_api_key_env: str | None = field(
        default=None, metadata={"help": "environment variable holding the endpoint's API key"}
    )
    endpoint_concurrency: int = field(
        default=16,
        metadata={"help": "most endpoint requests (llm matcher, judge, user) in flight at once: "
                  "a batch's calls run on a pool this size, not one after another"},
    )  # fmt: skip

    def endpoint(self) -> Endpoint | None:
        """The endpoint, if the config names one (URL and model)."""
        if not self.endpoint_url or not self.endpoint_model:
            return None
        return Endpoint(
            url=self.endpoint_url,
            model=self.endpoint_model,
            api_key_env=self.endpoint_api_key_env,
            concurrency=self.endpoint_concurrency,
        )


def _need(endpoint: Endpoint | None, what: str) -> Endpoint:
    if endpoint is None:
        raise ValueError(f"{what} needs an endpoint (endpoint_url and endpoint_model)")
    return endpoint


def _check(name: str, kind: str, choices: tuple[str, ...]) -> None:
    if name not in choices:
        raise ValueError(f"{kind} must be one of {list(choices)}, not {name!r}")


def make_simulator(
    name: str, endpoint: Endpoint | None = None, **options: Any
) -> Callable[[], UserSimulator]:
    """A factory of fresh simulated users. `options` go to the user (share, opener_fact_share)."""
    from training.simulators import LLMUser, ScriptedUser

    _check(name, "simulator", SIMULATORS)
    if name == "llm":
        where = _need(endpoint, "simulator=llm")
        share = options.get("share", 0.15)
        return lambda: LLMUser(where.url, where.model, where.api_key(), share=share)
    return lambda: ScriptedUser(**options)


def make_matcher(
    name: str, endpoint: Endpoint | None = None, threshold: float | None = None
) -> Matcher:
    from training import rewards

    _check(name, "matcher", MATCHERS)
    if name == "catalogue":  # evaluation only: phrasing-independent for catalogue users
        from training.evaluate.catalogue_matcher import CatalogueMatcher

        return CatalogueMatcher() if threshold is None else CatalogueMatcher(threshold)
    if name == "llm":
        where = _need(endpoint, "matcher=llm")
        return rewards.LLMJudgeMatcher(where.url, where.model, where.api_key())
    cls = rewards.EmbeddingMatcher if name == "embedding" else rewards.LexicalMatcher
    return cls() if threshold is None else cls(threshold)


def make_judge(name: str, endpoint: Endpoint | None = None) -> ResponseJudge:
    from training import rewards

    _check(name, "judge", JUDGES)
    if name == "llm":
        where = _need(endpoint, "judge=llm")
        return rewards.LLMKeepChattingJudge(where.url, where.model, where.api_key())
    if name == "eval":  # evaluation only: never the reward a policy was trained on
        from training.evaluate.judge import EvalJudge

        return EvalJudge()
    return rewards.OfflineResponseJudge()
