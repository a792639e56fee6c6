"""The paper's evaluation metrics (RLPA.md, Evaluation) as pure functions over per-turn series.

Conventions, where the paper leaves a choice open (the unit tests pin each one):

- A reply is *aligned* when its response score is at least 0.5 (the judges give 0 or 1).
- **AL(k)**: percent (0..100) of the users who reached turn k whose turn-k reply is aligned.
- **AVG**: the mean of AL(1..R).
- **N-IR**: min-max normalise the series to [0, 1], then fit y = a + b*k by least squares with k
  the turn number 1..R, *not* normalised (as ALOE, which the paper follows, does). N-IR = b, in
  normalised units per turn: a series that climbs linearly from its minimum at turn 1 to its
  maximum at turn R has N-IR = 1/(R-1); a falling one is negative.
- **N-R²**: the coefficient of determination of that fit (min-max scaling does not change it).
- Edge cases: fewer than two turns leave no line to fit, so N-IR and N-R² are None. A constant
  series has no min-max normalisation (0/0); it is taken as all zeros, so N-IR = 0.0 (nothing
  improved) and N-R² is None (there is no variance for a line to explain).

The same summary is applied to the per-turn mean of profile F1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

ALIGNED_AT = 0.5

PerUser = Sequence[Sequence[float]]
"""One list per user, indexed by turn (turn 1 first); users may stop early."""


def by_turn(values: PerUser) -> list[list[float]]:
    """Transpose per-user series into per-turn lists, dropping users who stopped earlier."""
    longest = max((len(user) for user in values), default=0)
    return [[user[k] for user in values if len(user) > k] for k in range(longest)]


def per_turn_means(values: PerUser) -> list[float]:
    return [sum(turn) / len(turn) for turn in by_turn(values)]


def aligned_percent(scores: Sequence[float]) -> float:
    if not scores:
        raise ValueError("no scores at this turn")
    return 100.0 * sum(score >= ALIGNED_AT for score in scores) / len(scores)


def alignment_levels(scores: PerUser) -> list[float]:
    """AL(1..R) in percent, from each user's response scores by turn."""
    return [aligned_percent(turn) for turn in by_turn(scores)]


def min_max_normalise(series: Sequence[float]) -> list[float]:
    """Scaled to [0, 1]; a constant series (0/0) becomes all zeros."""
    low, high = min(series), max(series)
    if high == low:
        return [0.0] * len(series)
    return [(value - low) / (high - low) for value in series]


def linear_fit(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float | None]:
    """Least-squares (slope, intercept, R²); R² is None when y has no variance."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("a line needs at least two points, as many x as y")
    n = len(x)
    mean_x, mean_y = sum(x) / n, sum(y) / n
    sxx = sum((a - mean_x) ** 2 for a in x)
    if sxx == 0:
        raise ValueError("x must not be constant")
    syy = sum((b - mean_y) ** 2 for b in y)
    sxy = sum((a - mean_x) * (b - mean_y) for a, b in zip(x, y, strict=True))
    slope = sxy / sxx
    r2 = None if syy == 0 else sxy * sxy / (sxx * syy)
    return slope, mean_y - slope * mean_x, r2


def improvement(series: Sequence[float]) -> tuple[float | None, float | None]:
    """(N-IR, N-R²) of a per-turn series, by the conventions in this module's docstring."""
    if len(series) < 2:
        return None, None
    turns = [float(k) for k in range(1, len(series) + 1)]
    slope, _, r2 = linear_fit(turns, min_max_normalise(series))
    return slope, r2


@dataclass(frozen=True)
class SeriesSummary:
    by_turn: list[float]
    mean: float
    """Mean over turns: AVG for AL(k), the mean profile F1 for F1."""
    first: float
    last: float
    n_ir: float | None
    n_r2: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise_series(series: Sequence[float]) -> SeriesSummary:
    if not series:
        raise ValueError("an empty series has no summary")
    n_ir, n_r2 = improvement(series)
    values = [float(v) for v in series]
    return SeriesSummary(values, sum(values) / len(values), values[0], values[-1], n_ir, n_r2)


def summarise(profile_f1: PerUser, response_scores: PerUser) -> dict[str, Any]:
    """Everything a report row needs, from per-user, per-turn profile F1 and response scores."""
    if len(profile_f1) != len(response_scores) or not profile_f1:
        raise ValueError("need the same users, at least one, in both series")
    every_score = [score for user in response_scores for score in user]
    return {
        "intervals": intervals(profile_f1, response_scores),
        "users": len(profile_f1),
        "turns": max(len(user) for user in response_scores),
        "profile_f1": summarise_series(per_turn_means(profile_f1)).to_dict(),
        "alignment": summarise_series(alignment_levels(response_scores)).to_dict(),
        "response_score": sum(every_score) / len(every_score),
    }


def intervals(profile_f1: PerUser, response_scores: PerUser) -> dict[str, Any]:
    """Per-user means with a bootstrap 95% interval over users (users resampled, seeded): the
    user's mean profile F1 over turns, its profile F1 at its last turn, its mean response
    score. Means of per-user means, so they can differ slightly from the per-turn series'."""
    from training.evaluate.intervals import bootstrap

    def over_users(values: list[float]) -> dict[str, Any] | None:
        estimate = bootstrap(values)
        return None if estimate is None else estimate.to_dict()

    return {
        "profile_f1": over_users([sum(u) / len(u) for u in profile_f1 if u]),
        "profile_f1_last_turn": over_users([u[-1] for u in profile_f1 if u]),
        "response_score": over_users([sum(u) / len(u) for u in response_scores if u]),
    }
