"""Bad input to the public theory functions raises ValueError naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

from entropy_rl import theory

GOOD = np.zeros((2, 3))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda x: theory.softmax(x), "logits"),
        (lambda x: theory.log_softmax(x), "logits"),
        (lambda x: theory.entropy(x), "logits"),
        (lambda x: theory.lemma1_entropy_change(x, GOOD), "logits"),
        (lambda x: theory.lemma1_entropy_change(GOOD, x), "delta"),
        (lambda x: theory.exact_entropy_change(GOOD, x), "delta"),
        (lambda x: theory.theorem1_entropy_change(GOOD, x, 0.1), "advantages"),
        (lambda x: theory.theorem2_entropy_change(x, GOOD, 0.1), "logits"),
        (lambda x: theory.pg_logit_update(GOOD, x, 0.1), "advantages"),
        (lambda x: theory.npg_logit_update(x, 0.1), "advantages"),
        (lambda x: theory.cov_under_pi(np.full((2, 3), 1 / 3), x, GOOD), "x"),
        (lambda x: theory.sample_cov(x[1], GOOD[1]), "x"),
    ],
)
def test_non_finite_input_names_the_argument(call, argument, bad):
    x = GOOD.copy()
    x[1, 2] = bad
    with pytest.raises(ValueError, match=rf"^{argument} contains 1 NaN/inf"):
        call(x)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: theory.lemma1_entropy_change(GOOD, np.zeros((2, 4))), "delta"),
        (lambda: theory.exact_entropy_change(GOOD, np.zeros(3)), "delta"),
        (lambda: theory.theorem1_entropy_change(GOOD, np.zeros((3, 3)), 0.1), "advantages"),
        (lambda: theory.theorem2_entropy_change(GOOD, np.zeros((2, 2)), 0.1), "advantages"),
        (
            lambda: theory.pg_logit_update(GOOD, GOOD, 0.1, state_weights=np.ones(3)),
            "state_weights",
        ),
        (lambda: theory.cov_under_pi(np.full(3, 1 / 3), np.zeros(3), np.zeros(4)), "y"),
        (lambda: theory.state_weighted_mean(np.zeros(3), np.full(2, 0.5)), "state_dist"),
        (lambda: theory.bandit_advantages(GOOD, np.zeros(3)), "rewards"),
    ],
)
def test_disagreeing_shapes_name_the_argument(call, argument):
    with pytest.raises(ValueError, match=rf"^{argument} has shape"):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda eta: theory.pg_logit_update(GOOD, GOOD, eta),
        lambda eta: theory.npg_logit_update(GOOD, eta),
        lambda eta: theory.theorem1_entropy_change(GOOD, GOOD, eta),
        lambda eta: theory.theorem2_entropy_change(GOOD, GOOD, eta),
    ],
)
@pytest.mark.parametrize("eta", [-1e-3, np.nan, np.inf])
def test_negative_or_non_finite_step_size_is_rejected(call, eta):
    with pytest.raises(ValueError, match=r"^eta must be a finite step size >= 0"):
        call(eta)


@pytest.mark.parametrize(
    ("dist", "message"),
    [
        (np.array([0.7, 0.7]), "state_dist must sum to 1"),
        (np.array([1.5, -0.5]), "state_dist must be non-negative"),
    ],
)
def test_state_distribution_must_be_a_distribution(dist, message):
    with pytest.raises(ValueError, match=message):
        theory.state_weighted_mean(np.zeros(2), dist)


def test_pi_must_be_a_distribution():
    with pytest.raises(ValueError, match="pi must sum to 1"):
        theory.cov_under_pi(np.array([0.5, 0.6]), np.zeros(2), np.zeros(2))


def test_mdp_rejects_bad_gamma_and_transitions():
    mdp = theory.random_mdp(2, 3, seed=0)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\)"):
        theory.TabularMDP(mdp.transitions, mdp.rewards, mdp.initial, gamma=1.0)
    with pytest.raises(ValueError, match="transitions must sum to 1"):
        theory.TabularMDP(mdp.transitions * 2, mdp.rewards, mdp.initial, gamma=0.9)
    with pytest.raises(ValueError, match="logits has shape"):
        theory.state_values(mdp, np.zeros((3, 3)))
