"""Sample-based covariance estimates, and policies over many states."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from entropy_rl.theory import (
    cov_under_pi,
    entropy,
    exact_entropy_change,
    lemma1_entropy_change,
    log_softmax,
    sample_cov,
    state_weighted_mean,
)

from .strategies import advantage_tables, logits_tables, state_distributions, table_shapes


@settings(max_examples=20)
@given(st.integers(2, 10), st.integers(0, 2**16), st.sampled_from([0.3, 1.0, 3.0]))
def test_sample_covariance_is_unbiased_and_error_shrinks_as_inverse_sqrt_n(
    n_actions, seed, logit_scale
):
    """E[Cov_hat] = Cov_pi, and RMSE <= sqrt(Var_pi[(x - Ex)(y - Ey)] / N) + O(1/N).

    The O(1/N) term is the product of the two sample-mean errors; it is all that is left when
    (x - Ex)(y - Ey) is constant under pi (two equally likely actions), where the error falls
    faster than 1/sqrt(N).
    """
    rng = np.random.default_rng(seed)
    logits = logit_scale * rng.normal(size=n_actions)
    advantages = rng.normal(size=n_actions)
    logp = log_softmax(logits)
    pi = np.exp(logp)
    exact = float(cov_under_pi(pi, logp, advantages))
    product = (logp - pi @ logp) * (advantages - pi @ advantages)
    product_std = float(np.sqrt(pi @ (product - pi @ product) ** 2))
    std_x = float(np.sqrt(cov_under_pi(pi, logp, logp)))
    std_y = float(np.sqrt(cov_under_pi(pi, advantages, advantages)))

    repeats = 400
    for n in (64, 256, 1024, 4096):
        actions = rng.choice(n_actions, size=(repeats, n), p=pi)
        estimates = np.array([sample_cov(logp[a], advantages[a]) for a in actions])
        # unbiased: the mean of the estimates is within 5 standard errors of the exact covariance
        standard_error = estimates.std(ddof=1) / np.sqrt(repeats)
        assert abs(estimates.mean() - exact) <= 5 * standard_error + 1e-12
        rmse = np.sqrt(np.mean((estimates - exact) ** 2))
        bound = 1.2 * product_std / np.sqrt(n) + 3 * std_x * std_y / n
        assert rmse <= bound, f"N={n}: RMSE {rmse:.3g} above {bound:.3g}"


@given(st.data())
def test_total_entropy_change_is_state_weighted_mean_of_per_state_changes(data):
    shape = data.draw(table_shapes(max_states=6))
    logits = data.draw(logits_tables(shape))
    delta = data.draw(advantage_tables(shape, max_scale=10.0))
    mu = data.draw(state_distributions(shape[0]))
    total_before = state_weighted_mean(entropy(logits), mu)
    total_after = state_weighted_mean(entropy(logits + delta), mu)
    per_state = exact_entropy_change(logits, delta)
    np.testing.assert_allclose(
        total_after - total_before, (mu * per_state).sum(), rtol=1e-9, atol=1e-12
    )
    # the first-order prediction of the total is the weighted mean of the per-state predictions
    np.testing.assert_allclose(
        state_weighted_mean(lemma1_entropy_change(logits, delta), mu),
        sum(mu[s] * lemma1_entropy_change(logits[s], delta[s])[()] for s in range(shape[0])),
        rtol=1e-9,
        atol=1e-12,
    )
