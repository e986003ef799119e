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
    entropy_bonus_terms,
    horizon,
    masked_mean,
    ppo_loss,
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
)
from entropy_rl.losses.registry import register_policy_loss

__all__ = ["clip_cov_loss", "clip_higher_loss", "entropy_bonus_loss", "grpo_loss", "kl_cov_loss"]


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
    return ppo_loss(logp, old_logp, advantages, mask, config)


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
    a baseline of the paper's (Cui et al., 2025, §4.3, Table 2).
    """
    return ppo_loss(logp, old_logp, advantages, mask, config)


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
    """Entropy bonus (the paper's entropy-loss baseline, Cui et al., 2025, §4.1): GRPO minus ``coef``
    times the mean token entropy.

        L = L_GRPO - coef · agg_t H_t,   H_t = -sum_v pi(v|s_t) log pi(v|s_t)

    ``entropy`` ([batch, seq], with gradient to the logits) must be passed; its gradient is
    ``-coef · dH/dz``, which raises the entropy of every token alike — the paper shows the outcome
    is very sensitive to ``coef`` (too small: collapse; too large: entropy explodes).
    """
    return entropy_bonus_terms(
        "entropy_bonus", logp, old_logp, advantages, mask, config, entropy, config.coef
    )


def _clip_cov_candidates(cov: Tensor, clipped: Tensor, mask: Tensor, config: ClipCovConfig):
    """Clip-Cov's candidates: valid tokens whose covariance is in the band, minus (by default) the
    tokens PPO already clipped."""
    if config.band == "strict":
        in_band = (cov > config.omega_low) & (cov < config.omega_high)
    else:
        in_band = (cov >= config.omega_low) & (cov <= config.omega_high)
    candidates = mask.to(torch.bool) & in_band
    return candidates & ~clipped if config.skip_ppo_clipped else candidates


def clip_cov_selection(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, config: ClipCovConfig, *,
    generator: torch.Generator | None = None, cov: Tensor | None = None, **extras: Any,
) -> Tensor:  # fmt: skip
    """The tokens Clip-Cov detaches: ``n = max(1, floor(r·N))`` of its candidates (at most all),
    uniformly at random by ``generator``, in the order of the flattened ``[batch, seq]`` tokens."""
    if cov is None:
        cov = token_covariance(logp, advantages, mask)
    clipped = ppo_token_losses(
        logp.detach(), old_logp, advantages, config.clip_ratio_low, config.clip_ratio_high
    ).clipped
    candidate_idx = torch.nonzero(_clip_cov_candidates(cov, clipped, mask, config).flatten())
    candidate_idx = candidate_idx.squeeze(-1)
    n_valid = int(mask.sum().item())
    n_pick = min(selection_count(config.r, n_valid, config.count_rounding), candidate_idx.numel())
    picked = torch.zeros(logp.numel(), dtype=torch.bool, device=logp.device)
    if n_pick > 0:
        order = torch.randperm(candidate_idx.numel(), generator=generator, device="cpu")
        picked[candidate_idx[order[:n_pick].to(candidate_idx.device)]] = True
    return picked.view_as(logp)


@register_policy_loss("clip_cov", ClipCovConfig, selector=clip_cov_selection)
def clip_cov_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    config: ClipCovConfig,
    *,
    selected: Tensor,
    cov: Tensor | None = None,
    **extras: Any,
) -> tuple[Tensor, dict]:
    """Clip-Cov (Cui et al., 2025, §4.2, Eqs. 11-12): no gradient for a few random high-covariance tokens.

        cov_i = (logp_i - mean logp) · (A_i - mean A)        over the N valid tokens
        I     = { i : omega_low < cov_i < omega_high }        (minus tokens PPO already clipped)
        pick n = max(1, floor(r·N)) of I uniformly at random (at most |I|)
        L     = agg_t  c_t · max(-A_t rho_t, -A_t clip(rho_t, 1 - eps_low, 1 + eps_high)),
                c_t = 0 for picked tokens, 1 otherwise

    As in the authors' code the picked tokens' losses are multiplied by 0 (no gradient) but still
    count in the token-mean's denominator. The pick is :func:`clip_cov_selection`'s, which the
    registry runs with ``extras["generator"]`` (pass the trainer's so that runs are reproducible)
    unless the caller hands ``selected`` (a trainer choosing over a whole split mini-batch).
    ``cov`` is ``token_covariance(logp, advantages, mask)`` if the caller has it (the registry
    passes it). Options: ``band`` (strict/inclusive), ``count_rounding``, ``skip_ppo_clipped``.
    """
    terms = ppo_token_losses(
        logp, old_logp, advantages, config.clip_ratio_low, config.clip_ratio_high,
        config.clip_ratio_c,
    )  # fmt: skip
    if cov is None:
        cov = token_covariance(logp, advantages, mask)
    n_valid = int(mask.sum().item())
    n_pick = int(selected.sum().item())
    keep = 1.0 - selected.to(logp.dtype)
    loss = aggregate(terms.loss * keep, mask, config.loss_agg_mode, horizon(config))
    return loss, {
        **clip_metrics(terms, mask, config),
        "cov_selected_count": n_pick,
        "cov_selected_frac": n_pick / max(n_valid, 1),
        "cov_band_count": int(_clip_cov_candidates(cov, terms.clipped, mask, config).sum().item()),
    }


def kl_cov_selection(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, config: KLCovConfig, *,
    cov: Tensor | None = None, **extras: Any,
) -> Tensor:  # fmt: skip
    """The tokens KL-Cov penalises: the ``n = max(1, floor(k·N))`` valid tokens of largest
    covariance (ties: the earlier token of the flattened ``[batch, seq]``)."""
    if cov is None:
        cov = token_covariance(logp, advantages, mask)
    valid = mask.to(torch.bool)
    n_pick = selection_count(config.k, int(valid.sum().item()), config.count_rounding)
    ranked = torch.where(valid, cov, -torch.inf).flatten()
    return top_n_mask(ranked, n_pick).view_as(logp) & valid


# its penalty beta·|logp - old_logp| has a gradient of size beta at any nonzero gap
@register_policy_loss("kl_cov", KLCovConfig, selector=kl_cov_selection, exact_old_logp=True)
def kl_cov_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    config: KLCovConfig,
    *,
    selected: Tensor,
    **extras: Any,
) -> tuple[Tensor, dict]:
    """KL-Cov (Cui et al., 2025, §4.2, Eqs. 13-14): a KL penalty on the tokens of largest covariance.

        cov_i = (logp_i - mean logp) · (A_i - mean A)        over the N valid tokens
        T     = the n = max(1, floor(k·N)) valid tokens of largest cov_i
        L     = agg_t ( -A_t rho_t + beta · |logp_t - old_logp_t| · [t in T] )

    As in the authors' code the surrogate is not clipped (``ppo_clip: true`` clips it like GRPO).
    Ties in ``cov`` go to the earlier token (stable sort), so the selection is deterministic.
    The penalty is 0, with 0 gradient, on the first, on-policy update of a batch: KL-Cov only acts
    from the second mini-batch update on. The tokens are :func:`kl_cov_selection`'s, run by the
    registry unless the caller hands ``selected``. ``abs_log_ratio`` is the mean of
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
    n_valid = int(mask.sum().item())
    n_pick = int(selected.sum().item())
    selected = selected.to(logp.dtype)
    token_losses = base + config.beta * (logp - old_logp).abs() * selected
    return aggregate(token_losses, mask, config.loss_agg_mode, horizon(config)), {
        **metrics,
        "cov_selected_count": n_pick,
        "cov_selected_frac": n_pick / max(n_valid, 1),
        "kl_cov_penalty": masked_mean((logp - old_logp).abs().detach() * selected, mask),
        "abs_log_ratio": masked_mean((logp - old_logp).abs().detach(), mask),  # verl's ppo_kl
    }
