"""Facts the paper states about the entropy dynamics of softmax policies."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from entropy_rl.theory import (
    cov_under_pi,
    entropy,
    exact_entropy_change,
    lemma1_entropy_change,
    log_softmax,
    npg_logit_update,
    softmax,
    theorem1_entropy_change,
    theorem2_entropy_change,
)

from .strategies import (
    advantage_tables,
    logits_tables,
    policy_and_direction,
    step_sizes,
    table_shapes,
    unit_floats,
)


@st.composite
def advantage_correlated_with_logp(draw):
    """Logits and A = alpha·log pi + noise, with Cov_pi(log pi, A) > 0 in every state."""
    shape = draw(table_shapes())
    logits = draw(logits_tables(shape, max_scale=10.0))
    alpha = draw(st.floats(0.1, 100.0))
    noise = draw(arrays(np.float64, shape, elements=unit_floats)) * draw(st.floats(0.0, 1.0))
    advantages = alpha * log_softmax(logits) + noise
    return logits, advantages


@given(advantage_correlated_with_logp())
def test_npg_entropy_decreases_when_advantage_correlates_with_logp(case):
    logits, advantages = case
    logp = log_softmax(logits)
    pi = np.exp(logp)
    cov = cov_under_pi(pi, logp, advantages)
    # a covariance large enough that the exact change is resolvable in float64
    spread = np.sqrt(cov_under_pi(pi, logp, logp) * cov_under_pi(pi, advantages, advantages))
    assume(np.all(cov > 1e-3 * spread) and np.all(spread > 1e-6))
    eta = 1e-6 / np.abs(advantages).max()
    assert np.all(theorem2_entropy_change(logits, advantages, eta) < 0)
    assert np.all(exact_entropy_change(logits, npg_logit_update(advantages, eta)) < 0)


@given(st.data())
def test_shifting_all_logits_of_a_state_changes_nothing(data):
    shape = data.draw(table_shapes())
    logits = data.draw(logits_tables(shape))
    advantages = data.draw(advantage_tables(shape, max_scale=100.0))
    eta = data.draw(step_sizes)
    shift = data.draw(arrays(np.float64, (shape[0], 1), elements=st.floats(-50, 50)))
    shifted = logits + shift
    np.testing.assert_allclose(softmax(shifted), softmax(logits), rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(entropy(shifted), entropy(logits), rtol=1e-9, atol=1e-12)
    for prediction in (theorem1_entropy_change, theorem2_entropy_change):
        np.testing.assert_allclose(
            prediction(shifted, advantages, eta),
            prediction(logits, advantages, eta),
            rtol=1e-7,
            atol=1e-12 * eta * 100,
        )


@given(st.data())
def test_shifting_advantages_of_a_state_changes_nothing_under_npg(data):
    shape = data.draw(table_shapes())
    logits = data.draw(logits_tables(shape))
    advantages = data.draw(advantage_tables(shape, max_scale=100.0))
    eta = data.draw(st.floats(1e-4, 1e-1))
    shift = data.draw(arrays(np.float64, (shape[0], 1), elements=st.floats(-100, 100)))
    np.testing.assert_allclose(
        theorem2_entropy_change(logits, advantages + shift, eta),
        theorem2_entropy_change(logits, advantages, eta),
        rtol=1e-7,
        atol=1e-10,
    )
    np.testing.assert_allclose(
        exact_entropy_change(logits, npg_logit_update(advantages + shift, eta)),
        exact_entropy_change(logits, npg_logit_update(advantages, eta)),
        rtol=1e-7,
        atol=1e-10,
    )


@given(table_shapes(), st.floats(-50, 50), st.data())
def test_uniform_policy_has_zero_first_order_entropy_change(shape, level, data):
    logits = np.full(shape, level)
    delta = data.draw(advantage_tables(shape))
    np.testing.assert_allclose(entropy(logits), np.log(shape[1]), rtol=1e-12)
    np.testing.assert_allclose(
        lemma1_entropy_change(logits, delta), 0.0, atol=1e-12 * np.abs(delta).max()
    )


@given(policy_and_direction())
def test_entropy_is_stable_and_bounded_for_extreme_logits(case):
    logits, direction = case
    for table in (logits, np.clip(logits * 1e3, -50, 50)):
        h = entropy(table)
        assert np.all(np.isfinite(h))
        assert np.all(h >= 0)
        assert np.all(h <= np.log(table.shape[-1]) + 1e-12)
    assert np.all(np.isfinite(theorem2_entropy_change(logits, 1e4 * direction, 1.0)))


@given(policy_and_direction())
def test_entropy_matches_50_digit_arithmetic_for_peaked_policies(case):
    """Near-deterministic policies (|z| up to 50) keep full relative precision in H."""
    mpmath = __import__("mpmath")
    logits, _ = case
    mpmath.mp.dps = 50
    for row, value in zip(logits, entropy(logits), strict=True):
        terms = [mpmath.e ** mpmath.mpf(float(z)) for z in row]
        total = mpmath.fsum(terms)
        exact = -mpmath.fsum(t / total * mpmath.log(t / total) for t in terms)
        assert abs(value - float(exact)) <= 1e-12 * float(exact) + 1e-300
