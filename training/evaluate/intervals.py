"""Percentile bootstrap 95% intervals over users, for one system and for the difference between
two systems on the same users.

Every estimate is a ratio of sums, sum(numerators) / sum(denominators), one entry per user: a
mean when each denominator is 1, a pooled rate otherwise (a user who stores one wrong trait
does not weigh like a user who stores twenty). Users are resampled with replacement, seeded, so
an interval is the same on every run; a resample whose denominators sum to zero has no ratio
and is left out of the percentiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    users: int
    """How many users the metric applies to."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _arrays(numerators: Sequence[float], denominators: Sequence[float] | None) -> tuple[Any, Any]:
    import numpy as np

    num = np.asarray(numerators, dtype=float)
    den = np.ones_like(num) if denominators is None else np.asarray(denominators, dtype=float)
    if num.shape != den.shape:
        raise ValueError("one numerator and one denominator per user")
    if (den < 0).any():
        raise ValueError("a denominator counts things: it cannot be negative")
    return num, den


def _ratios(num: Any, den: Any, picks: Any) -> Any:
    totals = den[picks].sum(axis=1)
    with_ratio = totals > 0
    ratios = num[picks].sum(axis=1)
    ratios[with_ratio] /= totals[with_ratio]
    ratios[~with_ratio] = float("nan")
    return ratios


def bootstrap(
    numerators: Sequence[float],
    denominators: Sequence[float] | None = None,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Estimate | None:
    """sum(numerators) / sum(denominators) (the mean, without denominators) with its interval;
    None for no users. A user may count nothing (denominator 0), but not every user."""
    import numpy as np

    num, den = _arrays(numerators, denominators)
    if num.size == 0:
        return None
    if den.sum() <= 0:
        raise ValueError("nothing to count: every user's denominator is zero")
    picks = np.random.default_rng(seed).integers(0, num.size, size=(resamples, num.size))
    low, high = np.nanpercentile(_ratios(num, den, picks), [2.5, 97.5])
    return Estimate(float(num.sum() / den.sum()), float(low), float(high), int(num.size))


def paired_bootstrap(
    a: Sequence[tuple[float, float]],
    b: Sequence[tuple[float, float]],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Estimate | None:
    """System a's ratio minus system b's, on the same users: `a[i]` and `b[i]` are user i's
    (numerator, denominator) under each. Each resample draws the same users for both, so what
    the users share (an easy user is easy for both) cancels out of the interval. None for no
    users, or when either system counts nothing."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError("the two systems must be read on the same users")
    if not a:
        return None
    a_num, a_den = _arrays([n for n, _ in a], [d for _, d in a])
    b_num, b_den = _arrays([n for n, _ in b], [d for _, d in b])
    if a_den.sum() <= 0 or b_den.sum() <= 0:
        return None
    picks = np.random.default_rng(seed).integers(0, len(a), size=(resamples, len(a)))
    differences = _ratios(a_num, a_den, picks) - _ratios(b_num, b_den, picks)
    low, high = np.nanpercentile(differences, [2.5, 97.5])
    mean = a_num.sum() / a_den.sum() - b_num.sum() / b_den.sum()
    return Estimate(float(mean), float(low), float(high), len(a))
