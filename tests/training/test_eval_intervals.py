"""Bootstrap intervals over users (training/evaluate/intervals.py): the paired difference keeps
its sign and pairs users; a pooled rate may hold users who count nothing."""

from __future__ import annotations

import pytest

from training.evaluate.intervals import bootstrap, paired_bootstrap


def test_a_paired_difference_is_positive_when_the_first_system_is_higher() -> None:
    better = [(0.9, 1.0), (0.7, 1.0), (0.8, 1.0), (1.0, 1.0), (0.6, 1.0)]
    worse = [(0.5, 1.0), (0.4, 1.0), (0.6, 1.0), (0.5, 1.0), (0.2, 1.0)]
    ahead = paired_bootstrap(better, worse, resamples=500)
    assert ahead is not None and ahead.mean == pytest.approx(0.36) and ahead.low > 0
    behind = paired_bootstrap(worse, better, resamples=500)
    assert behind is not None and behind.mean == pytest.approx(-0.36) and behind.high < 0
    assert (behind.low, behind.high) == pytest.approx((-ahead.high, -ahead.low))


def test_a_paired_difference_resamples_the_same_users_for_both_systems() -> None:
    # Users differ wildly, but the system beats the baseline by exactly 0.2 on every one: paired,
    # the interval is that 0.2; drawn independently it would spread over the users' spread.
    baseline = [(v, 1.0) for v in (0.0, 0.7, 0.1, 0.6, 0.3, 0.5)]
    system = [(v + 0.2, 1.0) for v, _ in baseline]
    difference = paired_bootstrap(system, baseline, resamples=500)
    assert difference is not None
    assert (difference.mean, difference.low, difference.high) == pytest.approx((0.2, 0.2, 0.2))


def test_a_paired_difference_of_pooled_rates_is_a_difference_of_ratios_of_sums() -> None:
    system = [(1.0, 10.0), (0.0, 0.0)]  # the second user stored nothing under the system
    baseline = [(2.0, 4.0), (1.0, 6.0)]
    difference = paired_bootstrap(system, baseline, resamples=200)
    assert difference is not None and difference.mean == pytest.approx(0.1 - 0.3)
    assert paired_bootstrap([], []) is None
    assert paired_bootstrap([(0.0, 0.0)], [(1.0, 2.0)]) is None  # nothing counted: no rate
    with pytest.raises(ValueError, match="same users"):
        paired_bootstrap([(1.0, 1.0)], [])


def test_a_pooled_rate_keeps_a_user_who_counts_nothing_in_its_denominator() -> None:
    # Tokens per covered fact: a user with tokens but no fact covered adds to the numerator.
    estimate = bootstrap([2, 5], [1, 0], resamples=200)
    assert estimate is not None and (estimate.mean, estimate.users) == (7.0, 2)
    assert estimate.low <= estimate.mean <= estimate.high
    with pytest.raises(ValueError, match="negative"):
        bootstrap([1], [-1])
