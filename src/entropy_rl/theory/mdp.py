"""Exact advantages, state visitation and policy gradients for bandits and tabular MDPs.

A discounted tabular MDP has transitions ``P[s, a, s']``, rewards ``r[s, a]``, start distribution
``rho[s]`` and discount ``gamma``. For a softmax policy ``pi = softmax(z)``:

    V = (I - gamma P_pi)^{-1} r_pi,     Q = r + gamma P V,     A = Q - V
    d_pi = (1 - gamma) rho^T (I - gamma P_pi)^{-1}            (normalised discounted visitation)
    dJ/dz[s, a] = d_pi(s) / (1 - gamma) · pi(a|s) · A(s, a)   (policy-gradient theorem, softmax)

so :func:`policy_gradient` is :func:`~entropy_rl.theory.softmax.pg_logit_update` with state
weights ``d_pi / (1 - gamma)``; a bandit is the one-state case with ``A = r - E_pi r``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from entropy_rl.theory._checks import Array, distribution, finite_array, same_shape
from entropy_rl.theory.softmax import softmax

__all__ = [
    "TabularMDP",
    "bandit_advantages",
    "discounted_visitation",
    "expected_return",
    "mdp_advantages",
    "policy_gradient",
    "q_values",
    "random_mdp",
    "state_values",
]


@dataclass(frozen=True)
class TabularMDP:
    """A finite discounted MDP: ``transitions[s, a, s']``, ``rewards[s, a]``, ``initial[s]``, ``gamma``."""

    transitions: Array
    rewards: Array
    initial: Array
    gamma: float

    def __post_init__(self) -> None:
        rewards = finite_array(self.rewards, "rewards", min_ndim=2)
        if rewards.ndim != 2:
            raise ValueError(f"rewards must have shape [S, A], got {rewards.shape}")
        n_states, n_actions = rewards.shape
        transitions = distribution(self.transitions, "transitions", (n_states, n_actions, n_states))
        initial = distribution(self.initial, "initial", (n_states,))
        if not 0.0 <= float(self.gamma) < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma}")
        object.__setattr__(self, "rewards", rewards)
        object.__setattr__(self, "transitions", transitions)
        object.__setattr__(self, "initial", initial)
        object.__setattr__(self, "gamma", float(self.gamma))

    @property
    def shape(self) -> tuple[int, int]:
        """``(S, A)``: the shape of a logits table for this MDP."""
        return self.rewards.shape  # type: ignore[return-value]


def random_mdp(
    n_states: int, n_actions: int, seed: int, gamma: float = 0.9, reward_scale: float = 1.0
) -> TabularMDP:
    """A random dense MDP: Dirichlet(1) transitions and start state, Gaussian rewards."""
    if n_states < 1 or n_actions < 1:
        raise ValueError(f"n_states and n_actions must be >= 1, got {n_states}, {n_actions}")
    rng = np.random.default_rng(seed)
    transitions = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions))
    rewards = reward_scale * rng.standard_normal((n_states, n_actions))
    initial = rng.dirichlet(np.ones(n_states))
    return TabularMDP(transitions, rewards, initial, gamma)


def _check_logits(mdp: TabularMDP, logits: ArrayLike) -> Array:
    z = finite_array(logits, "logits", min_ndim=2)
    if z.shape != mdp.shape:
        raise ValueError(f"logits has shape {z.shape} but the MDP has [S, A] = {list(mdp.shape)}")
    return z


def _policy_system(mdp: TabularMDP, logits: ArrayLike) -> tuple[Array, Array, Array]:
    """``pi``, ``I - gamma P_pi`` and ``r_pi`` for the softmax policy of ``logits``."""
    pi = softmax(_check_logits(mdp, logits))
    p_pi = np.einsum("sa,sat->st", pi, mdp.transitions)
    r_pi = (pi * mdp.rewards).sum(axis=-1)
    return pi, np.eye(mdp.shape[0]) - mdp.gamma * p_pi, r_pi


def state_values(mdp: TabularMDP, logits: ArrayLike) -> Array:
    """``V_pi = (I - gamma P_pi)^{-1} r_pi``, shape ``[S]``."""
    _, system, r_pi = _policy_system(mdp, logits)
    return np.linalg.solve(system, r_pi)


def q_values(mdp: TabularMDP, logits: ArrayLike) -> Array:
    """``Q_pi(s, a) = r(s, a) + gamma sum_s' P(s'|s, a) V_pi(s')``, shape ``[S, A]``."""
    return mdp.rewards + mdp.gamma * mdp.transitions @ state_values(mdp, logits)


def mdp_advantages(mdp: TabularMDP, logits: ArrayLike) -> Array:
    """``A_pi(s, a) = Q_pi(s, a) - V_pi(s)``; ``E_pi A(s, .) = 0`` in every state."""
    return q_values(mdp, logits) - state_values(mdp, logits)[:, None]


def discounted_visitation(mdp: TabularMDP, logits: ArrayLike) -> Array:
    """``d_pi = (1 - gamma) rho^T (I - gamma P_pi)^{-1}``: a distribution over states, shape ``[S]``."""
    _, system, _ = _policy_system(mdp, logits)
    return (1.0 - mdp.gamma) * np.linalg.solve(system.T, mdp.initial)


def expected_return(mdp: TabularMDP, logits: ArrayLike) -> float:
    """``J(pi) = sum_s rho(s) V_pi(s)``."""
    return float(mdp.initial @ state_values(mdp, logits))


def policy_gradient(mdp: TabularMDP, logits: ArrayLike) -> Array:
    """``dJ/dz[s, a] = d_pi(s)/(1 - gamma) · pi(a|s) · A_pi(s, a)`` (softmax policy-gradient theorem)."""
    z = _check_logits(mdp, logits)
    weights = discounted_visitation(mdp, z) / (1.0 - mdp.gamma)
    return weights[:, None] * softmax(z) * mdp_advantages(mdp, z)


def bandit_advantages(logits: ArrayLike, rewards: ArrayLike) -> Array:
    """Bandit advantage ``A(s, a) = r(s, a) - E_pi r(s, .)``, state by state."""
    z = finite_array(logits, "logits")
    r = finite_array(rewards, "rewards")
    same_shape(z, r, "logits", "rewards")
    return r - (softmax(z) * r).sum(axis=-1, keepdims=True)
