"""The law R = -a·exp(H) + b: recovery with calibrated intervals, prediction, degenerate input."""

from __future__ import annotations

import numpy as np
import pytest

from entropy_rl.analysis.law import early_fit_prediction, fit_law, law

A, B = 0.6, 1.1


def synthetic(seed: int, n: int = 40, noise: float = 0.02):
    rng = np.random.default_rng(seed)
    entropy = np.sort(rng.uniform(0.05, 0.8, n))[::-1]  # entropy falls over training
    return entropy, law(entropy, A, B) + noise * rng.standard_normal(n)


def test_fit_recovers_the_coefficients_of_a_known_law():
    entropy, accuracy = synthetic(0)
    fit = fit_law(entropy, accuracy)
    assert fit.a == pytest.approx(A, abs=0.05) and fit.b == pytest.approx(B, abs=0.05)
    assert fit.r2 > 0.95 and fit.ceiling == pytest.approx(fit.b - fit.a)
    assert fit.a_ci[0] < fit.a < fit.a_ci[1]


@pytest.mark.slow
def test_bootstrap_intervals_cover_the_truth_at_about_the_nominal_rate():
    covered_a = covered_b = 0
    repeats = 120
    for seed in range(repeats):
        fit = fit_law(*synthetic(seed), n_boot=300, level=0.9, seed=seed)
        covered_a += fit.a_ci[0] <= A <= fit.a_ci[1]
        covered_b += fit.b_ci[0] <= B <= fit.b_ci[1]
    # nominal 90%; the percentile bootstrap of a 40-point regression runs a little narrow
    assert 0.80 <= covered_a / repeats <= 0.98, covered_a / repeats
    assert 0.80 <= covered_b / repeats <= 0.98, covered_b / repeats


def test_early_fit_predicts_the_final_accuracy_of_a_known_law():
    entropy, accuracy = synthetic(1, noise=0.01)
    steps = np.arange(len(entropy))
    prediction = early_fit_prediction(steps, entropy, accuracy, fraction=1 / 3)
    assert abs(prediction["final_error"]) < 0.05 and prediction["rmse_later"] < 0.05
    assert prediction["final_observed"] == pytest.approx(accuracy[-1])


@pytest.mark.parametrize(
    ("entropy", "accuracy", "message"),
    [
        ([0.5, 0.4, 0.3], [0.5, 0.5, 0.5], "accuracy is constant"),
        ([0.5, 0.5, 0.5], [0.1, 0.2, 0.3], "entropy is constant"),
        ([0.5, 0.4], [0.1, 0.2], "at least 3"),
        ([0.5, np.nan, 0.3], [0.1, 0.2, 0.3], "must be finite"),
        ([0.5, 0.4, 0.3], [0.1, 0.2], "one length"),
    ],
)
def test_degenerate_input_is_a_clear_error(entropy, accuracy, message):
    with pytest.raises(ValueError, match=message):
        fit_law(entropy, accuracy)


def test_early_fit_needs_points_on_both_sides():
    with pytest.raises(ValueError, match="early fit needs >= 3 points"):
        early_fit_prediction([0, 1, 2, 3], [0.5, 0.4, 0.3, 0.2], [0.1, 0.2, 0.3, 0.4], fraction=0.3)
