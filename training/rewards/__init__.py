"""RLPA's per-turn rewards as TRL-style reward functions: `(completions, **columns) -> list[float]`.

Completions are raw model outputs in the contract format (server.rlpa). A completion that breaks
the format scores 0 on both rewards, as in the paper. Column values are per completion, as TRL
passes dataset columns: `true_profile[i]` is the gold profile for `completions[i]`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from functools import cache
from typing import Any, TypeVar

from server.rlpa import ParsedOutput, apply_block, parse_output
from training.data.profiles import Profile, as_trait
from training.rewards.profile import (
    EmbeddingMatcher,
    LexicalMatcher,
    LLMJudgeMatcher,
    Matcher,
    f1,
    profile_f1,
)
from training.rewards.response import (
    LLMKeepChattingJudge,
    OfflineResponseJudge,
    ResponseJudge,
    TraitLike,
)

RewardFunc = Callable[..., list[float]]
Item = TypeVar("Item")


def completion_text(completion: Any) -> str:
    """TRL hands over plain strings, or for conversational data a list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return str(completion.get("content", ""))
    messages = list(completion)
    return str(messages[-1].get("content", "")) if messages else ""


def trait_texts(profile: Profile | Sequence[TraitLike]) -> list[str]:
    traits = profile.traits if isinstance(profile, Profile) else profile
    return [as_trait(t).text for t in traits]


def _parsed(completions: Sequence[Any], **columns: Sequence[Any]) -> list[ParsedOutput]:
    for name, column in columns.items():
        if len(column) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(column)} {name} values")
    return [parse_output(completion_text(c)) for c in completions]


def _each(
    pool: Executor | None, score: Callable[[Item], float], items: Iterable[Item]
) -> list[float]:
    """`score` of every item, in order: on `pool` when there is one (a matcher or judge behind an
    endpoint waits on HTTP, so a batch's requests overlap), else one after another."""
    if pool is None:
        return [score(item) for item in items]
    return list(pool.map(score, items))


@cache
def _default_matcher() -> Matcher:
    return EmbeddingMatcher()


def profile_reward(
    completions: Sequence[Any],
    true_profile: Sequence[Profile | Sequence[TraitLike]],
    matcher: Matcher | None = None,
    stored: Sequence[Sequence[str]] | None = None,
    version: int = 1,
    pool: Executor | None = None,
    **_: Any,
) -> list[float]:
    """F1 of each completion's profile against its gold traits (0..1). Pass the traits revealed
    so far as `true_profile` to reward inference, the full profile to measure it.

    Under contract v1 the block is the profile. Under v2 it is a change: the profile scored is
    `stored[i]` with the block applied, as the gateway would store it. The default matcher is
    the offline embedding matcher, loaded on first use. With a `pool` the matcher is called
    from its threads, so pass one only for a thread-safe matcher (the LLM one)."""
    chosen = matcher or _default_matcher()
    before = stored if stored is not None else [[] for _ in completions]

    def score(item: tuple[ParsedOutput, Profile | Sequence[TraitLike], Sequence[str]]) -> float:
        parsed, gold, held = item
        if not parsed.format_ok:
            return 0.0
        if version == 1:
            inferred = parsed.profile or []
        else:
            inferred = apply_block(version, list(held), parsed.profile)
        return profile_f1(inferred, trait_texts(gold), chosen)

    parsed = _parsed(completions, true_profile=true_profile, stored=before)
    return _each(pool, score, zip(parsed, true_profile, before, strict=True))


def response_reward(
    completions: Sequence[Any],
    history: Sequence[Sequence[Mapping[str, str]]],
    revealed: Sequence[Sequence[TraitLike]],
    judge: ResponseJudge | None = None,
    pool: Executor | None = None,
    **_: Any,
) -> list[float]:
    """1.0 where the judge would keep chatting after the reply, else 0.0. `history[i]` is the
    visible chat that completion i answers (ending with the user's message). With a `pool` the
    judge is called from its threads, so pass one only for a thread-safe judge (the LLM one)."""
    chosen = judge or OfflineResponseJudge()

    def score(item: tuple[ParsedOutput, Sequence[Mapping[str, str]], Sequence[TraitLike]]) -> float:
        p, h, r = item
        return chosen.score(p.response, h, list(r), p.profile or []) if p.format_ok else 0.0

    parsed = _parsed(completions, history=history, revealed=revealed)
    return _each(pool, score, zip(parsed, history, revealed, strict=True))


def total_reward(
    completions: Sequence[Any],
    true_profile: Sequence[Profile | Sequence[TraitLike]],
    history: Sequence[Sequence[Mapping[str, str]]],
    revealed: Sequence[Sequence[TraitLike]],
    matcher: Matcher | None = None,
    judge: ResponseJudge | None = None,
    **_: Any,
) -> list[float]:
    """Profile reward + response reward, 0..2: what the paper ranks candidates by."""
    profile = profile_reward(completions, true_profile, matcher)
    response = response_reward(completions, history, revealed, judge)
    return [p + r for p, r in zip(profile, response, strict=True)]


def make_profile_reward(matcher: Matcher) -> RewardFunc:
    """profile_reward bound to a matcher, named as TRL logs it (a partial has no __name__)."""

    def profile(completions: Sequence[Any], **columns: Any) -> list[float]:
        return profile_reward(completions, columns["true_profile"], matcher)

    return profile


def make_response_reward(judge: ResponseJudge) -> RewardFunc:
    def response(completions: Sequence[Any], **columns: Any) -> list[float]:
        return response_reward(completions, columns["history"], columns["revealed"], judge)

    return response


__all__ = [
    "EmbeddingMatcher",
    "LLMJudgeMatcher",
    "LLMKeepChattingJudge",
    "LexicalMatcher",
    "Matcher",
    "OfflineResponseJudge",
    "ResponseJudge",
    "completion_text",
    "f1",
    "make_profile_reward",
    "make_response_reward",
    "profile_reward",
    "response_reward",
    "total_reward",
    "trait_texts",
]
