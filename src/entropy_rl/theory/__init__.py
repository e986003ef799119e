"""The paper's theory in exact float64 arithmetic: tabular softmax policies, Lemma 1, Theorems 1-2.

numpy only, no torch: this layer is the ground truth the torch losses and the simulator are checked
against, and the first chapter of the docs (docs/theory.md).
"""

from entropy_rl.theory.mdp import (
    TabularMDP,
    bandit_advantages,
    discounted_visitation,
    expected_return,
    mdp_advantages,
    policy_gradient,
    q_values,
    random_mdp,
    state_values,
)
from entropy_rl.theory.softmax import (
    cov_under_pi,
    entropy,
    exact_entropy_change,
    kl_divergence,
    lemma1_entropy_change,
    log_softmax,
    npg_logit_update,
    pg_logit_update,
    sample_cov,
    softmax,
    state_weighted_mean,
    theorem1_entropy_change,
    theorem2_entropy_change,
)

__all__ = [
    "TabularMDP",
    "bandit_advantages",
    "cov_under_pi",
    "discounted_visitation",
    "entropy",
    "exact_entropy_change",
    "expected_return",
    "kl_divergence",
    "lemma1_entropy_change",
    "log_softmax",
    "mdp_advantages",
    "npg_logit_update",
    "pg_logit_update",
    "policy_gradient",
    "q_values",
    "random_mdp",
    "sample_cov",
    "softmax",
    "state_values",
    "state_weighted_mean",
    "theorem1_entropy_change",
    "theorem2_entropy_change",
]
