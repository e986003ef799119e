"""Policy losses by name: ``get_policy_loss("kl_cov")(logp, old_logp, advantages, mask, config)``.

Importing this package registers the built-in losses (``grpo``, ``clip_higher``,
``entropy_bonus``, ``clip_cov``, ``kl_cov``).
"""

from entropy_rl.losses import policy as _builtin  # noqa: F401  (registers the built-in losses)
from entropy_rl.losses.common import (
    aggregate,
    kl_estimate,
    masked_mean,
    ppo_token_losses,
    selection_count,
    token_covariance,
)
from entropy_rl.losses.config import (
    AGGREGATIONS,
    ClipCovConfig,
    ClipHigherConfig,
    EntropyBonusConfig,
    GRPOConfig,
    KLCovConfig,
    LossConfig,
)
from entropy_rl.losses.registry import (
    PolicyLoss,
    available_policy_losses,
    get_policy_loss,
    make_loss_config,
    register_policy_loss,
)

__all__ = [
    "AGGREGATIONS",
    "ClipCovConfig",
    "ClipHigherConfig",
    "EntropyBonusConfig",
    "GRPOConfig",
    "KLCovConfig",
    "LossConfig",
    "PolicyLoss",
    "aggregate",
    "available_policy_losses",
    "get_policy_loss",
    "kl_estimate",
    "make_loss_config",
    "masked_mean",
    "ppo_token_losses",
    "register_policy_loss",
    "selection_count",
    "token_covariance",
]
