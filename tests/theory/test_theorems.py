"""Theorems 1 and 2 are Lemma 1 applied to the exact PG and NPG logit updates."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from entropy_rl.theory import (
    discounted_visitation,
    lemma1_entropy_change,
    mdp_advantages,
    npg_logit_update,
    pg_logit_update,
    policy_gradient,
    random_mdp,
    theorem1_entropy_change,
    theorem2_entropy_change,
)

from .strategies import (
    advantage_tables,
    logits_tables,
    state_distributions,
    step_sizes,
    table_shapes,
)


@st.composite
def policy_advantage_step(draw, with_weights: bool = False):
    shape = draw(table_shapes())
    logits = draw(logits_tables(shape))
    advantages = draw(advantage_tables(shape))
    eta = draw(step_sizes)
    weights = draw(state_distributions(shape[0])) * shape[0] if with_weights else None
    return logits, advantages, eta, weights


@given(policy_advantage_step(with_weights=True))
def test_theorem1_equals_lemma1_applied_to_pg_update(case):
    logits, advantages, eta, weights = case
    delta = pg_logit_update(logits, advantages, eta, state_weights=weights)
    scale = eta * np.abs(advantages).max() * 1e-12 + 1e-300
    np.testing.assert_allclose(
        theorem1_entropy_change(logits, advantages, eta, state_weights=weights),
        lemma1_entropy_change(logits, delta),
        rtol=1e-9,
        atol=scale,
    )


@given(policy_advantage_step())
def test_theorem2_equals_lemma1_applied_to_npg_update(case):
    logits, advantages, eta, _ = case
    delta = npg_logit_update(advantages, eta)
    scale = eta * np.abs(advantages).max() * 1e-12 + 1e-300
    np.testing.assert_allclose(
        theorem2_entropy_change(logits, advantages, eta),
        lemma1_entropy_change(logits, delta),
        rtol=1e-9,
        atol=scale,
    )


@given(st.integers(1, 5), st.integers(2, 6), st.integers(0, 2**16))
def test_policy_gradient_is_the_gradient_of_the_return(n_states, n_actions, seed):
    """On a tabular MDP the exact PG update is dJ/dz (checked by finite differences of J)."""
    from entropy_rl.theory import expected_return

    mdp = random_mdp(n_states, n_actions, seed)
    logits = np.random.default_rng(seed).normal(size=mdp.shape)
    h = 1e-6
    numeric = np.zeros(mdp.shape)
    for index in np.ndindex(mdp.shape):
        bump = np.zeros(mdp.shape)
        bump[index] = h
        numeric[index] = (
            expected_return(mdp, logits + bump) - expected_return(mdp, logits - bump)
        ) / (2 * h)
    np.testing.assert_allclose(policy_gradient(mdp, logits), numeric, atol=1e-7)


@given(st.integers(1, 5), st.integers(2, 6), st.integers(0, 2**16), step_sizes)
def test_theorem1_on_an_mdp_uses_visitation_weights(n_states, n_actions, seed, eta):
    mdp = random_mdp(n_states, n_actions, seed)
    logits = np.random.default_rng(seed).normal(size=mdp.shape)
    advantages = mdp_advantages(mdp, logits)
    weights = discounted_visitation(mdp, logits) / (1 - mdp.gamma)
    delta = eta * policy_gradient(mdp, logits)
    np.testing.assert_allclose(delta, pg_logit_update(logits, advantages, eta, weights), atol=1e-12)
    np.testing.assert_allclose(
        theorem1_entropy_change(logits, advantages, eta, weights),
        lemma1_entropy_change(logits, delta),
        rtol=1e-9,
        atol=1e-15,
    )
