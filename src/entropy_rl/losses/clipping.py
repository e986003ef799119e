"""Objectives that change what PPO's clip acts on, each a registered loss with its config class
beside it.

- ``gspo``: Zheng et al., 2025, *Group Sequence Policy Optimization* (arXiv 2507.18071) — PPO's
  clip on the length-normalised sequence ratio ``(π_θ(y|x) / π_old(y|x))^(1/|y|)``;
- ``gmpo``: Zhao et al., 2025, *Geometric-Mean Policy Optimization* (arXiv 2507.20673) — the
  geometric mean of the token ratios, each clipped in log space, in place of their arithmetic mean;
- ``cispo``: MiniMax, 2025, *MiniMax-M1* (arXiv 2506.13585) — the clip on the importance weight,
  under a stop-gradient, so no token's gradient is dropped;
- ``sapo``: Gao et al., 2025, *Soft Adaptive Policy Optimization* (arXiv 2511.20347) — a sigmoid
  gate on the ratio in place of the hard clip, steeper for negative advantages.

Each follows verl's code (``compute_policy_loss_gspo``, ``compute_policy_loss_geo_mean``,
``compute_policy_loss_cispo`` and ``compute_policy_loss_sapo`` in ``verl/trainer/ppo/core_algos.py``): the same clamps and
aggregation; the defaults are the papers'. None has a dual-clip, so a finite ``clip_ratio_c`` is
refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from entropy_rl.losses.common import (
    aggregate,
    clip_metrics,
    horizon,
    masked_mean,
    ppo_token_losses,
)
from entropy_rl.losses.config import AGGREGATIONS, LossConfig
from entropy_rl.losses.registry import register_policy_loss
from entropy_rl.settings import choice, number

__all__ = [
    "CISPOConfig",
    "GMPOConfig",
    "GSPOConfig",
    "SAPOConfig",
    "cispo_loss",
    "gmpo_loss",
    "gspo_loss",
    "sapo_gate",
    "sapo_loss",
    "sequence_log_ratio",
]

LOG_RATIO_MAX = 10.0  # verl's clamp on GSPO's log-ratio, against overflow
RATIO_LOG_CLAMP = 20.0  # verl's clamp on CISPO's and SAPO's log-ratios, both sides


@dataclass(frozen=True)
class _NoDualClipConfig(LossConfig):
    """The settings of a loss without a dual-clip (nor has verl's): a finite ``clip_ratio_c``
    is refused, naming the loss."""

    def check(self) -> None:
        if math.isfinite(self.clip_ratio_c):
            raise ValueError(
                f"{self.section}.clip_ratio_c = {self.clip_ratio_c:g}: {self.section} has no "
                "dual-clip (nor has verl's); leave clip_ratio_c unset"
            )


def _clamped_ratio(logp: Tensor, old_logp: Tensor) -> Tensor:
    """``π / π_old`` from the log-ratio clamped to ``±20`` (verl's guard against overflow)."""
    return torch.exp((logp - old_logp).clamp(-RATIO_LOG_CLAMP, RATIO_LOG_CLAMP))


@dataclass(frozen=True)
class GSPOConfig(_NoDualClipConfig):
    """GSPO: the sequence ratio clipped to ``[1 - 3e-4, 1 + 4e-4]`` (the paper's ranges), the
    token losses averaged per sequence, then over sequences."""

    section: ClassVar[str] = "gspo"
    clip_ratio_low: float = number(3e-4, 0.0, 1.0, doc="sequence ratio >= 1 - clip_ratio_low")
    clip_ratio_high: float = number(4e-4, 0.0, doc="sequence ratio <= 1 + clip_ratio_high")
    loss_agg_mode: str = choice(
        "seq-mean-token-mean",
        AGGREGATIONS,
        doc="how token losses become one loss (GSPO: per sequence, then over sequences)",
    )


def sequence_log_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    """GSPO's per-token log-ratio ``log s_i,t = sg[log s_i] + log π_t − sg[log π_t]``, ``[B, T]``,
    where ``log s_i = (1/|y_i|) Σ_t (log π_t − log π_old,t)`` over the response's valid tokens:
    its value is the sequence's, its gradient each token's own ``∇ log π_t``. Clamped at 10."""
    valid = mask.to(logp.dtype)
    lengths = valid.sum(dim=-1).clamp(min=1.0)
    log_s = ((logp - old_logp) * valid).sum(dim=-1) / lengths
    return (logp - logp.detach() + log_s.detach()[:, None]).clamp(max=LOG_RATIO_MAX)


@register_policy_loss("gspo", GSPOConfig)
def gspo_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
    config: GSPOConfig, **extras: Any,
) -> tuple[Tensor, dict]:  # fmt: skip
    """GSPO (Zheng et al., 2025, arXiv 2507.18071): PPO's clipped surrogate on the sequence ratio.

        s_i = exp( (1/|y_i|) Σ_t (log π_t − log π_old,t) )
        L   = agg_t max(−A_t s_i,t, −A_t clip(s_i,t, 1 − eps_low, 1 + eps_high))

    with ``s_i,t`` from :func:`sequence_log_ratio` (the value ``s_i``, the gradient
    ``s_i · ∇ log π_t``), so under ``seq-mean-token-mean`` the gradient is that of
    ``−A_i · s_i`` per sequence: every token of a response is clipped together.
    """
    terms = ppo_token_losses(
        sequence_log_ratio(logp, old_logp, mask), torch.zeros_like(logp), advantages,
        config.clip_ratio_low, config.clip_ratio_high,
    )  # fmt: skip
    loss = aggregate(terms.loss, mask, config.loss_agg_mode, horizon(config))
    return loss, clip_metrics(terms, mask, config)


@dataclass(frozen=True)
class GMPOConfig(_NoDualClipConfig):
    """GMPO: each token's log-ratio clipped to ``[-0.4, 0.4]`` (the paper's range, in log space),
    their mean exponentiated per sequence, one loss per sequence averaged over the batch."""

    section: ClassVar[str] = "gmpo"
    clip_ratio_low: float = number(0.4, 0.0, doc="log-ratio >= -clip_ratio_low")
    clip_ratio_high: float = number(0.4, 0.0, doc="log-ratio <= clip_ratio_high")


@register_policy_loss("gmpo", GMPOConfig)
def gmpo_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
    config: GMPOConfig, **extras: Any,
) -> tuple[Tensor, dict]:  # fmt: skip
    """GMPO (Zhao et al., 2025, arXiv 2507.20673): the geometric mean of the clipped token ratios.

        d_t  = log π_t − log π_old,t,   sgn = sign(A_t)
        d'_t = sgn · min(sgn · d_t, sgn · clip(d_t, −eps_low, eps_high))
        r_i  = exp( Σ_t d'_t / (|y_i| + 1e-8) ),   Ā_i = Σ_t A_t / (|y_i| + 1e-8)
        L    = (1/B) Σ_i −Ā_i · r_i

    As verl's ``geo_mean``: the clip is pessimistic per token (the side that lowers the objective
    is kept), the sum runs over valid tokens, and ``loss_agg_mode`` is not used (one loss a
    response, every response of the batch weighted alike).
    """
    valid = mask.to(logp.dtype)
    log_ratio = logp - old_logp
    sign = torch.sign(advantages)
    clipped = log_ratio.clamp(-config.clip_ratio_low, config.clip_ratio_high)
    kept = sign * torch.minimum(sign * log_ratio, sign * clipped)
    lengths = valid.sum(dim=-1) + 1e-8
    ratio = torch.exp((kept * valid).sum(dim=-1) / lengths)
    advantage = (advantages * valid).sum(dim=-1) / lengths
    loss = (-advantage * ratio).mean()
    was_clipped = (log_ratio != clipped).to(logp.dtype)
    return loss, {
        "pg_clipfrac": masked_mean(was_clipped * (advantages > 0), mask),
        "pg_clipfrac_lower": masked_mean(was_clipped * (advantages < 0), mask),
    }


@dataclass(frozen=True)
class CISPOConfig(_NoDualClipConfig):
    """CISPO: the importance weight clipped to ``[1 - 1, 1 + 0.28]`` (no lower bound, as the
    paper: it tunes the upper one only), token-mean."""

    section: ClassVar[str] = "cispo"
    clip_ratio_low: float = number(
        1.0, 0.0, 1.0, doc="weight >= 1 - clip_ratio_low (1: no lower bound, the paper's)"
    )
    clip_ratio_high: float = number(0.28, 0.0, doc="weight <= 1 + clip_ratio_high")


@register_policy_loss("cispo", CISPOConfig)
def cispo_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
    config: CISPOConfig, **extras: Any,
) -> tuple[Tensor, dict]:  # fmt: skip
    """CISPO (MiniMax, 2025, arXiv 2506.13585): REINFORCE weighted by the clipped importance weight.

        w_t = sg[ clip(π_t / π_old,t, 1 − eps_low, 1 + eps_high) ]
        L   = agg_t −w_t · A_t · log π_t

    Where PPO's clip zeroes a token's gradient once its ratio leaves the band, CISPO only caps the
    token's weight: every token keeps ``−w_t · A_t · ∇ log π_t``, a rare token that the first
    update raised (the forks the entropy mechanism is about) included. As verl, the log-ratio is
    clamped to ``±20`` before the exponential; ``pg_clipfrac`` counts the tokens whose weight the
    clip changed.
    """
    ratio = _clamped_ratio(logp, old_logp).detach()
    weight = ratio.clamp(1.0 - config.clip_ratio_low, 1.0 + config.clip_ratio_high)
    losses = -weight * advantages * logp
    loss = aggregate(losses, mask, config.loss_agg_mode, horizon(config))
    return loss, {"pg_clipfrac": masked_mean((ratio != weight).to(logp.dtype), mask)}


@dataclass(frozen=True)
class SAPOConfig(_NoDualClipConfig):
    """SAPO: the gate's temperatures, ``tau_pos = 1`` and ``tau_neg = 1.05`` (verl's defaults),
    the token losses averaged per sequence, then over sequences; the clip ranges are not used."""

    section: ClassVar[str] = "sapo"
    tau_pos: float = number(1.0, 0.0, low_open=True, doc="gate temperature where A > 0")
    tau_neg: float = number(1.05, 0.0, low_open=True, doc="gate temperature where A <= 0")
    loss_agg_mode: str = choice(
        "seq-mean-token-mean",
        AGGREGATIONS,
        doc="how token losses become one loss (SAPO: per sequence, then over sequences)",
    )


def sapo_gate(ratio: Tensor, tau: Tensor | float) -> Tensor:
    """SAPO's gate ``f(r) = σ(τ (r − 1)) · 4 / τ``: ``f'(1) = 1`` (on-policy it is the policy
    gradient), and the gradient fades smoothly as ``r`` leaves 1, faster for a larger ``τ``."""
    return torch.sigmoid(tau * (ratio - 1.0)) * (4.0 / tau)


@register_policy_loss("sapo", SAPOConfig)
def sapo_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
    config: SAPOConfig, **extras: Any,
) -> tuple[Tensor, dict]:  # fmt: skip
    """SAPO (Gao et al., 2025, arXiv 2511.20347): a soft, sigmoid gate on the ratio, no hard clip.

        r_t = π_t / π_old,t,   τ_t = tau_pos if A_t > 0 else tau_neg
        L   = agg_t −A_t · σ(τ_t (r_t − 1)) · 4 / τ_t

    The gradient of a token is ``−A_t · 4 σ(1 − σ) · r_t · ∇ log π_t``: PPO's at ``r = 1``, smaller
    the further the ratio has moved, never cut to zero. As verl, the log-ratio is clamped to
    ``±20``.
    """
    ratio = _clamped_ratio(logp, old_logp)
    tau = torch.where(
        advantages > 0, advantages.new_tensor(config.tau_pos), advantages.new_tensor(config.tau_neg)
    )
    losses = -advantages * sapo_gate(ratio, tau)
    return aggregate(losses, mask, config.loss_agg_mode, horizon(config)), {}
