"""The paper's policy losses: GRPO, clip-higher, entropy bonus, Clip-Cov and KL-Cov.

Each is the formula of the paper (or of the authors' reference code where it is more precise),
over ``[batch, seq]`` token tensors. Their shared metrics and the optional KL-to-reference term are
added by the registry (see ``registry.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from entropy_rl.losses.common import (
    aggregate,
    clip_metrics,
    horizon,
    masked_mean,
    ppo_terms,
    ppo_token_losses,
    selection_count,
    token_covariance,
    top_n_mask,
)
from entropy_rl.losses.config import (
    ClipCovConfig,
    ClipHigherConfig,
    EntropyBonusConfig,
    GRPOConfig,
    KLCovConfig,
    LossConfig,
)
from entropy_rl.losses.registry import register_policy_loss

__all__ = ["clip_cov_loss", "clip_higher_loss", "entropy_bonus_loss", "grpo_loss", "kl_cov_loss"]


def _ppo(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, config: LossConfig):
    token_losses, metrics = ppo_terms(logp, old_logp, advantages, mask, config)
    return aggregate(token_losses, mask, config.loss_agg_mode, horizon(config)), metrics


@register_policy_loss("grpo", GRPOConfig)
def grpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    config: GRPOConfig,
    **extras: Any,
) -> tuple[Tensor, dict]:
    """GRPO (Shao et al., 2024): PPO's clipped surrogate with group-normalised advantages.

    L = agg_t max(-A_t rho_t, -A_t clip(rho_t, 1 - eps_low, 1 + eps_high)),
    rho_t = exp(logp_t - old_logp_t),  eps_low = eps_high = 0.2,  token-mean by default.
    """
    return _ppo(logp, old_logp, advantages, mask, config)


@register_policy_loss("clip_higher", ClipHigherConfig)
def clip_higher_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    config: ClipHigherConfig,
    **extras: Any,
) -> tuple[Tensor, dict]:
    """Clip-higher (DAPO, Yu et al. 2025): GRPO with a wider upper clip, eps_high = 0.28 > eps_low = 0.2.

    Lets low-probability tokens with positive advantage grow further, which slows entropy collapse;
    a baseline of the paper's Table 2.
    """
    return _ppo(logp, old_logp, advantages, mask, config)


@register_policy_loss("entropy_bonus", EntropyBonusConfig)
def entropy_bonus_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    config: EntropyBonusConfig,
    *,
    entropy: Tensor | None = None,
    **extras: Any,
) -> tuple[Tensor, dict]:
    """Entropy bonus (the paper's entropy-loss baseline): GRPO minus ``coef`` times the mean token entropy.

        L = L_GRPO - coef · agg_t H_t,   H_t = -sum_v pi(v|s_t) log pi(v|s_t)

    ``entropy`` ([batch, seq], with gradient to the logits) must be passed; its gradient is
    ``-coef · dH/dz``, which raises the entropy of every token alike — the paper shows the outcome
    is very sensitive to ``coef`` (too small: collapse; too large: entropy explodes).
    """
    if entropy is None:
        raise ValueError(
            "entropy_bonus needs extras['entropy']: the [batch, seq] token entropy computed from "
            "the logits with gradient (entropy_rl.metrics.token_entropy)"
        )
    if entropy.shape != logp.shape:
        raise ValueError(
            f"entropy has shape {tuple(entropy.shape)} but logp has {tuple(logp.shape)}"
        )
    loss, metrics = _ppo(logp, old_logp, advantages, mask, config)
    return loss - config.coef * aggregate(
        entropy, mask, config.loss_agg_mode, horizon(config)
    ), metrics


@register_policy_loss("clip_cov", ClipCovConfig)
def clip_cov_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    config: ClipCovConfig,
    *,
    generator: torch.Generator | None = None,
    cov: Tensor | None = None,
    **extras: Any,
) -> tuple[Tensor, dict]:
    """Clip-Cov (Cui et al., 2025): no gradient for a few random high-covariance tokens.

        cov_i = (logp_i - mean logp) · (A_i - mean A)        over the N valid tokens
        I     = { i : omega_low < cov_i < omega_high }        (minus tokens PPO already clipped)
        pick n = max(1, floor(r·N)) of I uniformly at random (at most |I|)
        L     = agg_t  c_t · max(-A_t rho_t, -A_t clip(rho_t, 1 - eps_low, 1 + eps_high)),
                c_t = 0 for picked tokens, 1 otherwise

    As in the authors' code the picked tokens' losses are multiplied by 0 (no gradient) but still
    count in the token-mean's denominator. ``generator`` seeds the pick; pass the trainer's so that
    runs are reproducible. ``cov`` is ``token_covariance(logp, advantages, mask)`` if the caller
    has it (the registry passes it). Options: ``band`` (strict/inclusive), ``count_rounding``,
    ``skip_ppo_clipped``.
    """
    terms = ppo_token_losses(
        logp, old_logp, advantages, config.clip_ratio_low, config.clip_ratio_high,
        config.clip_ratio_c,
    )  # fmt: skip
    token_losses, clipped = terms.loss, terms.clipped
    valid = mask.to(torch.bool)
    if cov is None:
        cov = token_covariance(logp, advantages, mask)
    if config.band == "strict":
        in_band = (cov > config.omega_low) & (cov < config.omega_high)
    else:
        in_band = (cov >= config.omega_low) & (cov <= config.omega_high)
    candidates = valid & in_band
    if config.skip_ppo_clipped:
        candidates &= ~clipped
    candidate_idx = torch.nonzero(candidates.flatten()).squeeze(-1)
    n_valid = int(valid.sum().item())
    n_pick = min(selection_count(config.r, n_valid, config.count_rounding), candidate_idx.numel())
    keep = torch.ones(logp.numel(), dtype=logp.dtype, device=logp.device)
    if n_pick > 0:
        order = torch.randperm(candidate_idx.numel(), generator=generator, device="cpu")
        keep[candidate_idx[order[:n_pick].to(candidate_idx.device)]] = 0.0
    keep = keep.view_as(logp)
    loss = aggregate(token_losses * keep, mask, config.loss_agg_mode, horizon(config))
    return loss, {
        **clip_metrics(terms, mask, config),
        "cov_selected_count": n_pick,
        "cov_selected_frac": n_pick / max(n_valid, 1),
        "cov_band_count": int(candidates.sum().item()),
    }


@register_policy_loss("kl_cov", KLCovConfig)
def kl_cov_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    config: KLCovConfig,
    *,
    cov: Tensor | None = None,
    **extras: Any,
) -> tuple[Tensor, dict]:
    """KL-Cov (Cui et al., 2025): a KL penalty on the tokens of largest covariance.

        cov_i = (logp_i - mean logp) · (A_i - mean A)        over the N valid tokens
        T     = the n = max(1, floor(k·N)) valid tokens of largest cov_i
        L     = agg_t ( -A_t rho_t + beta · |logp_t - old_logp_t| · [t in T] )

    As in the authors' code the surrogate is not clipped (``ppo_clip: true`` clips it like GRPO).
    Ties in ``cov`` go to the earlier token (stable sort), so the selection is deterministic.
    The penalty is 0, with 0 gradient, on the first, on-policy update of a batch: KL-Cov only acts
    from the second mini-batch update on. ``cov`` is ``token_covariance(logp, advantages, mask)``
    if the caller has it (the registry passes it). ``abs_log_ratio`` is the mean of
    ``|logp - old_logp|`` over all valid tokens (what verl's kl_cov logs as ``actor/ppo_kl``);
    ``kl_cov_penalty`` the same mean with the unselected tokens counted as 0.
    """
    if config.ppo_clip:
        terms = ppo_token_losses(
            logp, old_logp, advantages, config.clip_ratio_low, config.clip_ratio_high,
            config.clip_ratio_c,
        )  # fmt: skip
        base, metrics = terms.loss, clip_metrics(terms, mask, config)
    else:
        base = -advantages * torch.exp(logp - old_logp)
        metrics = {"pg_clipfrac": torch.zeros((), dtype=logp.dtype)}
    valid = mask.to(torch.bool)
    n_valid = int(valid.sum().item())
    n_pick = selection_count(config.k, n_valid, config.count_rounding)
    if cov is None:
        cov = token_covariance(logp, advantages, mask)
    ranked = torch.where(valid, cov, -torch.inf).flatten()
    selected = top_n_mask(ranked, n_pick).to(logp.dtype).view_as(logp)
    token_losses = base + config.beta * (logp - old_logp).abs() * selected
    return aggregate(token_losses, mask, config.loss_agg_mode, horizon(config)), {
        **metrics,
        "cov_selected_count": n_pick,
        "cov_selected_frac": n_pick / max(n_valid, 1),
        "kl_cov_penalty": masked_mean((logp - old_logp).abs().detach() * selected, mask),
        "abs_log_ratio": masked_mean((logp - old_logp).abs().detach(), mask),  # verl's ppo_kl
    }
