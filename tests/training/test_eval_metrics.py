"""The eval metrics against values worked out by hand (the conventions are in metrics.py)."""

from __future__ import annotations

import pytest

from training.evaluate import metrics


def test_alignment_levels_are_the_percent_aligned_at_each_turn() -> None:
    scores = [[1, 0, 1], [0, 0, 1], [1, 1, 1], [0, 1, 0]]
    assert metrics.alignment_levels(scores) == [50.0, 50.0, 75.0]


def test_alignment_counts_only_users_who_reached_the_turn() -> None:
    assert metrics.alignment_levels([[1, 1], [0]]) == [50.0, 100.0]
    assert metrics.per_turn_means([[0.2, 0.4], [0.6]]) == pytest.approx([0.4, 0.4])


def test_a_half_score_counts_as_aligned() -> None:
    assert metrics.aligned_percent([0.5, 0.49]) == 50.0


def test_min_max_normalisation_maps_the_series_onto_zero_to_one() -> None:
    assert metrics.min_max_normalise([20, 60, 40, 80]) == pytest.approx([0, 2 / 3, 1 / 3, 1])


def test_a_straight_climb_has_slope_one_over_r_minus_one_and_r2_one() -> None:
    n_ir, n_r2 = metrics.improvement([0.0, 50.0, 100.0])
    assert n_ir == pytest.approx(0.5)
    assert n_r2 == pytest.approx(1.0)


def test_n_ir_and_n_r2_of_a_noisy_series() -> None:
    # Normalised y = [0, 2/3, 1/3, 1] at k = 1..4: Sxy = 4/3, Sxx = 5, Syy = 5/9, so the
    # slope is 4/15 and R² = (16/9) / (5 * 5/9) = 16/25.
    n_ir, n_r2 = metrics.improvement([20, 60, 40, 80])
    assert n_ir == pytest.approx(4 / 15)
    assert n_r2 == pytest.approx(0.64)


def test_n_ir_does_not_depend_on_the_scale_of_the_series() -> None:
    assert metrics.improvement([0.2, 0.6, 0.4, 0.8]) == pytest.approx(
        metrics.improvement([20, 60, 40, 80])
    )


def test_a_falling_series_has_negative_n_ir() -> None:
    n_ir, n_r2 = metrics.improvement([90.0, 60.0, 30.0])
    assert n_ir == pytest.approx(-0.5)
    assert n_r2 == pytest.approx(1.0)


def test_a_constant_series_did_not_improve_and_has_no_r2() -> None:
    assert metrics.min_max_normalise([40.0, 40.0, 40.0]) == [0.0, 0.0, 0.0]
    assert metrics.improvement([40.0, 40.0, 40.0]) == (0.0, None)


def test_one_turn_leaves_no_line_to_fit() -> None:
    assert metrics.improvement([70.0]) == (None, None)
    assert metrics.improvement([]) == (None, None)


def test_linear_fit_returns_slope_intercept_and_r2() -> None:
    slope, intercept, r2 = metrics.linear_fit([1, 2, 3], [1, 3, 2])
    # mean x = 2, mean y = 2, Sxy = 1, Sxx = 2, Syy = 2: slope 0.5, intercept 1, R² = 1/4.
    assert (slope, intercept) == pytest.approx((0.5, 1.0))
    assert r2 == pytest.approx(0.25)


def test_linear_fit_refuses_what_is_no_line() -> None:
    with pytest.raises(ValueError):
        metrics.linear_fit([1], [1])
    with pytest.raises(ValueError):
        metrics.linear_fit([2, 2], [1, 3])


def test_summarise_gives_avg_first_last_and_trend_for_both_series() -> None:
    f1 = [[0.0, 0.5, 1.0], [0.0, 0.5, 0.5]]
    scores = [[0, 1, 1], [0, 0, 1]]
    summary = metrics.summarise(f1, scores)
    assert (summary["users"], summary["turns"]) == (2, 3)
    alignment = summary["alignment"]
    assert alignment["by_turn"] == [0.0, 50.0, 100.0]
    assert alignment["mean"] == pytest.approx(50.0)  # AVG
    assert (alignment["first"], alignment["last"]) == (0.0, 100.0)
    assert alignment["n_ir"] == pytest.approx(0.5)
    assert alignment["n_r2"] == pytest.approx(1.0)
    profile = summary["profile_f1"]
    assert profile["by_turn"] == pytest.approx([0.0, 0.5, 0.75])
    assert profile["mean"] == pytest.approx(1.25 / 3)
    # Normalised [0, 2/3, 1]: Sxy = 1, Sxx = 2, Syy = 14/27: slope 1/2, R² = 1 / (28/27).
    assert profile["n_ir"] == pytest.approx(0.5)
    assert profile["n_r2"] == pytest.approx(27 / 28)
    assert summary["response_score"] == pytest.approx(0.5)


def test_summarise_needs_the_same_users_in_both_series() -> None:
    with pytest.raises(ValueError):
        metrics.summarise([[1.0]], [[1.0], [0.0]])
    with pytest.raises(ValueError):
        metrics.summarise([], [])


def test_summaries_carry_a_bootstrap_interval_over_users() -> None:
    from training.evaluate.metrics import summarise

    f1 = [[0.0, 0.5], [1.0, 1.0], [0.5, 0.5]]
    scores = [[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
    intervals = summarise(f1, scores)["intervals"]
    assert intervals["profile_f1"]["mean"] == pytest.approx((0.25 + 1.0 + 0.5) / 3)
    assert intervals["profile_f1_last_turn"]["mean"] == pytest.approx(2 / 3)
    assert intervals["response_score"]["mean"] == pytest.approx(0.5)
    for estimate in intervals.values():
        assert estimate["low"] <= estimate["mean"] <= estimate["high"]
        assert estimate["users"] == 3
    # identical users leave nothing to resample: the interval collapses onto the mean
    same = summarise([[0.5, 0.5]] * 4, [[1.0, 1.0]] * 4)["intervals"]["profile_f1"]
    assert same["low"] == same["high"] == same["mean"] == 0.5
