"""The one factory for the pieces a stage plugs together: simulated users, profile matchers and
response judges, by name. Training (`rl`) and evaluation (`eval`) both build theirs here, so a
name means the same thing in every recipe."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.rewards import Matcher, ResponseJudge
    from training.simulators import UserSimulator

SIMULATORS = ("scripted", "llm")
MATCHERS = ("lexical", "embedding", "llm", "catalogue")
JUDGES = ("offline", "llm", "eval")


@dataclass(frozen=True)
class Endpoint:
    """Any OpenAI-compatible /v1 server an LLM-backed piece talks to."""

    base_url: str
    model: str
    api_key: str | None = None


def _need(endpoint: Endpoint | None, what: str) -> Endpoint:
    if endpoint is None:
        raise ValueError(f"{what} needs an endpoint (base_url and model)")
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
        return lambda: LLMUser(where.base_url, where.model, where.api_key, share=share)
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
        return rewards.LLMJudgeMatcher(where.base_url, where.model, where.api_key)
    cls = rewards.EmbeddingMatcher if name == "embedding" else rewards.LexicalMatcher
    return cls() if threshold is None else cls(threshold)


def make_judge(name: str, endpoint: Endpoint | None = None) -> ResponseJudge:
    from training import rewards

    _check(name, "judge", JUDGES)
    if name == "llm":
        where = _need(endpoint, "judge=llm")
        return rewards.LLMKeepChattingJudge(where.base_url, where.model, where.api_key)
    if name == "eval":  # evaluation only: never the reward a policy was trained on
        from training.evaluate.judge import EvalJudge

        return EvalJudge()
    return rewards.OfflineResponseJudge()
