"""The profile reward: F1 between the inferred and the true profile, with pluggable matchers that
count how many inferred traits mean the same as a true trait (one-to-one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from training.text import content_words, jaccard, names_conflict


class Matcher(Protocol):
    def match(self, inferred: Sequence[str], true: Sequence[str]) -> int:
        """m: the number of (inferred, true) pairs that match, each trait used at most once."""
        ...


def f1(matched: int, n_inferred: int, n_true: int) -> float:
    """2m / (|inferred| + |true|), the paper's profile reward.

    Both empty scores 1.0: at a cold-start turn the user has revealed nothing, and an empty
    profile is then exactly right. Scoring it 0 would give every candidate the same reward on
    that turn (a guessed trait also scores 0), leaving no signal against inventing facts.
    """
    if n_inferred == 0 and n_true == 0:
        return 1.0
    if not 0 <= matched <= min(n_inferred, n_true):
        raise ValueError(f"{matched} matches cannot come from {n_inferred} and {n_true} traits")
    return 2 * matched / (n_inferred + n_true)


def profile_f1(inferred: Sequence[str], true: Sequence[str], matcher: Matcher) -> float:
    if not inferred or not true:
        return f1(0, len(inferred), len(true))
    matched = min(matcher.match(inferred, true), len(inferred), len(true))
    return f1(matched, len(inferred), len(true))


def greedy_pairs(scores: list[list[float]], threshold: float) -> int:
    """Pairs at or above the threshold, best first, each row and column used once."""
    cells = sorted(
        ((score, i, j) for i, row in enumerate(scores) for j, score in enumerate(row)),
        reverse=True,
    )
    rows: set[int] = set()
    cols: set[int] = set()
    for score, i, j in cells:
        if score < threshold:
            break
        if i not in rows and j not in cols:
            rows.add(i)
            cols.add(j)
    return len(rows)


class LexicalMatcher:
    """Content-word Jaccard; cheap and model-free, meant for tests and quick smoke runs.
    Misses paraphrases sharing no word ("has a toddler" / "is the parent of a two-year-old")."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def match(self, inferred: Sequence[str], true: Sequence[str]) -> int:
        true_words = [content_words(t) for t in true]
        scores = [
            [
                0.0 if names_conflict(a, b) else jaccard(content_words(a), words)
                for b, words in zip(true, true_words, strict=True)
            ]
            for a in inferred
        ]
        return greedy_pairs(scores, self.threshold)


# Re-exported so every matcher is importable from here; they live apart to keep files short.
from training.rewards.matchers import EmbeddingMatcher, LLMJudgeMatcher  # noqa: E402

__all__ = [
    "EmbeddingMatcher",
    "LLMJudgeMatcher",
    "LexicalMatcher",
    "Matcher",
    "f1",
    "greedy_pairs",
    "profile_f1",
]
