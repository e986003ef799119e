"""Tabular softmax policies and the paper's entropy mechanism, in exact float64 arithmetic.

A tabular softmax policy over ``S`` states and ``A`` actions is a logits table ``z`` of shape
``[S, A]`` (or ``[A]`` for a single-state bandit):

    pi(a|s) = exp(z[s, a]) / sum_b exp(z[s, b])
    H(s)    = -sum_a pi(a|s) log pi(a|s)
    Cov_pi(x, y) = E_pi[x y] - E_pi[x] E_pi[y]

Every function works on the last axis (actions) and keeps the leading axes (states), so a bandit
and a tabular MDP share one implementation. Inputs are validated: NaN/inf, shapes that disagree and
negative step sizes raise ``ValueError`` naming the argument.

References: Cui et al. (2025), "The Entropy Mechanism of Reinforcement Learning for Reasoning
Language Models", Lemma 1, Theorem 1 (policy gradient) and Theorem 2 (natural policy gradient).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from entropy_rl.theory._checks import (
    Array,
    distribution,
    finite_array,
    same_shape,
    state_weight_column,
    step_size,
)

__all__ = [
    "cov_under_pi",
    "entropy",
    "exact_entropy_change",
    "kl_divergence",
    "lemma1_entropy_change",
    "log_softmax",
    "npg_logit_update",
    "pg_logit_update",
    "sample_cov",
    "softmax",
    "state_weighted_mean",
    "theorem1_entropy_change",
    "theorem2_entropy_change",
]


# --------------------------------------------------------------------------------------------
# the softmax policy


def log_softmax(logits: ArrayLike) -> Array:
    """``log pi(a|s) = z[s,a] - log sum_b exp(z[s,b])``, stable for large and peaked logits.

    The log-sum-exp is taken as ``max + log1p(sum of the other exp(z - max))`` so that
    ``log pi`` of the most likely action stays accurate to relative precision even when it is
    ``~ -1e-40`` (a near-deterministic policy), which the entropy of such a policy depends on.
    """
    z = finite_array(logits, "logits")
    top = np.argmax(z, axis=-1)[..., None]
    shifted = z - np.take_along_axis(z, top, axis=-1)
    others = np.exp(shifted)
    np.put_along_axis(others, top, 0.0, axis=-1)
    return shifted - np.log1p(others.sum(axis=-1, keepdims=True))


def softmax(logits: ArrayLike) -> Array:
    """``pi(a|s) = exp(z[s,a]) / sum_b exp(z[s,b])`` along the last axis."""
    return np.exp(log_softmax(logits))


def entropy(logits: ArrayLike) -> Array:
    """Per-state entropy ``H(s) = -sum_a pi(a|s) log pi(a|s)`` of the softmax policy, shape ``[S]``."""
    logp = log_softmax(logits)
    return -(np.exp(logp) * logp).sum(axis=-1)


def kl_divergence(logits: ArrayLike, reference: ArrayLike) -> Array:
    """Per-state ``KL(pi || pi_ref) = sum_a pi(a|s) (log pi(a|s) - log pi_ref(a|s))`` of two
    softmax policies, shape ``[S]``: what a KL-to-reference term's sampled estimates average to."""
    logp, ref = log_softmax(logits), log_softmax(reference)
    same_shape(logp, ref, "logits", "reference")
    return (np.exp(logp) * (logp - ref)).sum(axis=-1)


def cov_under_pi(pi: ArrayLike, x: ArrayLike, y: ArrayLike) -> Array:
    """Covariance under the policy, per state: ``Cov_pi(x, y) = E_pi[(x - E_pi x)(y - E_pi y)]``.

    The centred form equals ``E_pi[xy] - E_pi[x] E_pi[y]`` and avoids its cancellation when
    ``x`` or ``y`` are large (advantages up to 1e4). ``pi``, ``x`` and ``y`` share one shape.
    """
    p = distribution(pi, "pi", np.shape(pi))
    xa = finite_array(x, "x")
    ya = finite_array(y, "y")
    same_shape(p, xa, "pi", "x")
    same_shape(p, ya, "pi", "y")
    xc = xa - (p * xa).sum(axis=-1, keepdims=True)
    yc = ya - (p * ya).sum(axis=-1, keepdims=True)
    return (p * xc * yc).sum(axis=-1)


def sample_cov(x: ArrayLike, y: ArrayLike) -> float:
    """Unbiased Monte-Carlo covariance from ``N`` paired samples ``(x_i, y_i)``, ``x_i = log pi(a_i)``:

        Cov_hat = 1/(N-1) sum_i (x_i - mean x)(y_i - mean y),   a_i ~ pi.

    Its expectation is ``Cov_pi(x, y)``; its error shrinks as ``1/sqrt(N)``. The token covariance of
    Clip-Cov / KL-Cov is this estimator (without the Bessel factor) applied to a batch of tokens.
    """
    xa = finite_array(x, "x")
    ya = finite_array(y, "y")
    same_shape(xa, ya, "x", "y")
    if xa.ndim != 1 or xa.shape[0] < 2:
        raise ValueError(f"x must be a 1-D sample of at least 2 values, got shape {xa.shape}")
    return float(((xa - xa.mean()) * (ya - ya.mean())).sum() / (xa.shape[0] - 1))


def state_weighted_mean(values: ArrayLike, state_dist: ArrayLike) -> float:
    """``sum_s mu(s) v(s)``: the policy-level quantity from per-state ones (e.g. the policy entropy)."""
    v = finite_array(values, "values", min_ndim=0)
    v = np.atleast_1d(v)
    if v.ndim != 1:
        raise ValueError(f"values must be one number per state, got shape {v.shape}")
    mu = distribution(state_dist, "state_dist", v.shape)
    return float((mu * v).sum())


# --------------------------------------------------------------------------------------------
# exact logit updates


def pg_logit_update(
    logits: ArrayLike,
    advantages: ArrayLike,
    eta: float,
    state_weights: ArrayLike | None = None,
) -> Array:
    """Exact policy-gradient step on softmax logits: ``delta[s,a] = eta · w(s) · pi(a|s) · A(s,a)``
    (Cui et al., 2025, §3.2, Proposition 1).

    ``dJ/dz[s,a] = w(s) pi(a|s) A(s,a)`` for a softmax policy, where ``A`` is the true advantage
    (``E_pi A(s,.) = 0``) and ``w(s)`` is the state-visitation weight (``d_pi(s)/(1-gamma)`` in a
    discounted MDP; 1 for a bandit, the default).
    """
    z = finite_array(logits, "logits")
    adv = finite_array(advantages, "advantages")
    same_shape(z, adv, "logits", "advantages")
    eta = step_size(eta)
    w = state_weight_column(state_weights, z.shape)
    return eta * w * softmax(z) * adv


def npg_logit_update(advantages: ArrayLike, eta: float) -> Array:
    """Exact natural-policy-gradient step on softmax logits: ``delta[s,a] = eta · A(s,a)``.

    The Fisher preconditioner cancels the ``pi`` and visitation factors of the plain gradient
    (Kakade, 2001), so the logit of each action moves by its advantage.
    """
    adv = finite_array(advantages, "advantages")
    return step_size(eta) * adv


# --------------------------------------------------------------------------------------------
# the entropy mechanism: first-order predictions and the exact change


def exact_entropy_change(logits: ArrayLike, delta: ArrayLike) -> Array:
    """Per-state exact change ``H(z + delta) - H(z)``."""
    z = finite_array(logits, "logits")
    d = finite_array(delta, "delta")
    same_shape(z, d, "logits", "delta")
    return entropy(z + d) - entropy(z)


def lemma1_entropy_change(logits: ArrayLike, delta: ArrayLike) -> Array:
    """Lemma 1, first order: ``H(z + delta) - H(z) ≈ -Cov_pi(log pi, delta)`` per state
    (Cui et al., 2025, §3.1, Lemma 1).

    Exact as a directional derivative: ``d/de H(z + e·delta)|_{e=0} = -Cov_pi(log pi, delta)``.
    """
    z = finite_array(logits, "logits")
    d = finite_array(delta, "delta")
    same_shape(z, d, "logits", "delta")
    logp = log_softmax(z)
    return -cov_under_pi(np.exp(logp), logp, d)


def theorem1_entropy_change(
    logits: ArrayLike,
    advantages: ArrayLike,
    eta: float,
    state_weights: ArrayLike | None = None,
) -> Array:
    """Theorem 1 (policy gradient): ``dH(s) ≈ -eta · w(s) · Cov_pi(log pi(a|s), pi(a|s)·A(s,a))``
    (Cui et al., 2025, §3.2, Theorem 1).

    Lemma 1 applied to :func:`pg_logit_update`. Actions that are both likely and advantageous
    (or unlikely and disadvantageous) lower the entropy.
    """
    z = finite_array(logits, "logits")
    adv = finite_array(advantages, "advantages")
    same_shape(z, adv, "logits", "advantages")
    eta = step_size(eta)
    w = state_weight_column(state_weights, z.shape)[..., 0]
    logp = log_softmax(z)
    pi = np.exp(logp)
    return -eta * w * cov_under_pi(pi, logp, pi * adv)


def theorem2_entropy_change(logits: ArrayLike, advantages: ArrayLike, eta: float) -> Array:
    """Theorem 2 (natural policy gradient): ``dH(s) ≈ -eta · Cov_pi(log pi(a|s), A(s,a))``
    (Cui et al., 2025, §3.2, Theorem 2).

    Lemma 1 applied to :func:`npg_logit_update`: entropy falls when the advantage is positively
    correlated with the action's log-probability — the paper's account of entropy collapse.
    """
    z = finite_array(logits, "logits")
    adv = finite_array(advantages, "advantages")
    same_shape(z, adv, "logits", "advantages")
    eta = step_size(eta)
    logp = log_softmax(z)
    return -eta * cov_under_pi(np.exp(logp), logp, adv)
