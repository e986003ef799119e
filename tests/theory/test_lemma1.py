"""Lemma 1: H(z + delta) - H(z) = -Cov_pi(log pi, delta) + O(|delta|^2)."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given

from entropy_rl.theory import entropy, exact_entropy_change, lemma1_entropy_change

from .strategies import policy_and_direction


def entropy_along(logits: np.ndarray, direction: np.ndarray, e: float) -> np.ndarray:
    return entropy(logits + e * direction)


@given(policy_and_direction())
def test_lemma1_derivative_equals_negative_covariance(case):
    logits, direction = case
    h = 1e-5
    central_difference = (
        entropy_along(logits, direction, h) - entropy_along(logits, direction, -h)
    ) / (2 * h)
    # Relative 1e-6 where the derivative is sizeable; absolute near 0 (round-off is ~eps·H/h).
    np.testing.assert_allclose(
        central_difference, lemma1_entropy_change(logits, direction), rtol=1e-6, atol=1e-9
    )


def second_derivative(logits: np.ndarray, direction: np.ndarray, h: float = 1e-3) -> np.ndarray:
    plus = entropy_along(logits, direction, h)
    minus = entropy_along(logits, direction, -h)
    return (plus - 2 * entropy(logits) + minus) / h**2


def third_derivative(logits: np.ndarray, direction: np.ndarray, h: float = 1e-2) -> np.ndarray:
    values = [entropy_along(logits, direction, k * h) for k in (-2, -1, 1, 2)]
    return (-values[0] + 2 * values[1] - 2 * values[2] + values[3]) / (2 * h**3)


@given(policy_and_direction(max_logit_scale=10.0))
def test_lemma1_remainder_is_second_order(case):
    """log|ΔH_exact - ΔH_pred| against log eta over [1e-4, 1e-1] has slope 2 ± 0.2.

    Only states where the second-order term leads are fitted: its coefficient must stand above
    float round-off at eta = 1e-4 and above the third-order term at eta = 1e-1.
    """
    logits, direction = case
    c2 = np.abs(second_derivative(logits, direction)) / 2
    c3 = np.abs(third_derivative(logits, direction)) / 6
    leading = (c2 > 1e-3) & (c3 * 0.1 < 0.2 * c2)
    assume(leading.any())
    etas = np.logspace(-4, -1, 7)
    remainders = np.array(
        [
            np.abs(
                exact_entropy_change(logits, eta * direction)
                - lemma1_entropy_change(logits, eta * direction)
            )
            for eta in etas
        ]
    )
    for state in np.flatnonzero(leading):
        slope = np.polyfit(np.log(etas), np.log(remainders[:, state]), 1)[0]
        assert abs(slope - 2.0) <= 0.2, f"state {state}: log-log slope {slope:.3f}"
    # bounded as eta -> 0: remainder / eta^2 tends to the second-order coefficient
    np.testing.assert_allclose(remainders[0, leading] / etas[0] ** 2, c2[leading], rtol=0.01)
