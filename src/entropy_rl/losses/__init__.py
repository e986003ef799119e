"""Policy losses by name: ``get_policy_loss("kl_cov")(logp, old_logp, advantages, mask, config)``.

Importing this package registers the paper's losses (``grpo``, ``clip_higher``, ``entropy_bonus``,
``clip_cov``, ``kl_cov``) and the later interventions (``dr_grpo``, ``forking_tokens``,
``entropy_advantage``, ``pos_neg_weight``, ``entropy_target``, ``adaptive_entropy``) and the
objectives that change what the clip acts on (``gspo``, ``gmpo``,
``cispo``, ``sapo``), the regularizers that read the whole distribution (``siren``,
``lp_reg``) and AEPO (``aepo``), which trains on extra responses drawn at another temperature.
"""

from entropy_rl.losses import clipping as _clipping  # noqa: F401  (gspo, gmpo, cispo, sapo)
from entropy_rl.losses import interventions as _later  # noqa: F401  (registers later interventions)
from entropy_rl.losses import policy as _builtin  # noqa: F401  (registers the paper's losses)
from entropy_rl.losses import regularizers as _whole  # noqa: F401  (siren, lp_reg: read the logits)
from entropy_rl.losses import resampling as _resampling  # noqa: F401  (aepo: extra tempered draws)
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
    Controller,
    PolicyLoss,
    available_policy_losses,
    get_policy_loss,
    make_loss_config,
    register_policy_loss,
    select_tokens,
)

__all__ = [
    "AGGREGATIONS",
    "ClipCovConfig",
    "ClipHigherConfig",
    "Controller",
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
    "select_tokens",
    "selection_count",
    "token_covariance",
]
