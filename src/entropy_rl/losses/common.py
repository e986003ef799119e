"""Pure token-tensor pieces the policy losses are built from.

Shapes: token tensors are ``[batch, seq]``; ``mask`` marks valid response tokens (bool or 0/1).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

if TYPE_CHECKING:
    from entropy_rl.losses.config import LossConfig

__all__ = [
    "PPOTerms",
    "aggregate",
    "aggregation_share",
    "clip_metrics",
    "entropy_bonus_terms",
    "horizon",
    "kl_estimate",
    "masked_mean",
    "need_entropy",
    "ppo_loss",
    "ppo_terms",
    "ppo_token_losses",
    "selection_count",
    "token_covariance",
    "top_n_mask",
]


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """``sum(values · mask) / sum(mask)`` over all entries; 0 when no entry is valid."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def _unknown_aggregation(mode: str) -> ValueError:
    return ValueError(
        "loss_agg_mode must be one of token-mean, seq-mean-token-sum, seq-mean-token-mean, "
        f"seq-mean-token-sum-norm, got {mode!r}"
    )


def aggregate(
    token_losses: Tensor, mask: Tensor, mode: str, horizon: float | None = None
) -> Tensor:
    """Reduce ``[batch, seq]`` token losses to one number; the modes are verl's ``agg_loss``'s.

    - ``token-mean``: ``sum_{b,t} L m / sum_{b,t} m`` (every token weighs the same; DAPO, the paper)
    - ``seq-mean-token-sum``: ``mean_b sum_t L m``
    - ``seq-mean-token-mean``: ``mean_b (sum_t L m / sum_t m)`` (every response weighs the same; GRPO paper)
    - ``seq-mean-token-sum-norm``: ``sum_{b,t} L m / (B · T)`` (Dr. GRPO: a constant normaliser,
      so long and short responses are not re-weighted). ``T`` is ``horizon``: the trainer passes
      the maximum response length (``max_new_tokens``), as TRL divides by
      ``max_completion_length`` and verl by its ``loss_scale_factor``; without it, the padded
      width ``seq`` (verl's default), which changes with the batch.

    ``B`` counts every row, as TRL's ``_compute_loss`` does; verl's seq-means leave out rows with no
    valid token (the two agree when every response has a token, as every sampled one does).
    """
    m = mask.to(token_losses.dtype)
    if mode == "seq-mean-token-sum-norm":
        width = token_losses.shape[-1] if horizon is None else horizon
        return (token_losses * m).sum() / (token_losses[..., 0].numel() * width)
    if mode == "token-mean":
        return masked_mean(token_losses, m)
    if mode == "seq-mean-token-sum":
        return (token_losses * m).sum(dim=-1).mean()
    if mode == "seq-mean-token-mean":
        return ((token_losses * m).sum(dim=-1) / m.sum(dim=-1).clamp(min=1.0)).mean()
    raise _unknown_aggregation(mode)


class PPOTerms(NamedTuple):
    """The per-token pieces of PPO's clipped surrogate (:func:`ppo_token_losses`)."""

    loss: Tensor  # [batch, seq]: the token losses
    clipped: Tensor  # bool: PPO's clip is active (the token's gradient is zero)
    unclipped: Tensor  # -A·rho
    capped: Tensor  # bool: dual-clip's cap -A·c is active (A < 0; zero gradient)


def ppo_token_losses(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    clip_low: float,
    clip_high: float,
    clip_ratio_c: float = math.inf,
) -> PPOTerms:
    """PPO's clipped surrogate per token (Schulman et al., 2017), the GRPO objective of the paper
    (Cui et al., 2025, Eq. 4), with the optional dual-clip of Ye et al. (2020) that verl applies:

        rho = exp(logp - old_logp)
        L   = max(-A·rho, -A·clip(rho, 1 - eps_low, 1 + eps_high))
        L   = min(L, -A·c)   where A < 0   (dual-clip; ``clip_ratio_c = c``, inf: off)

    The cap bounds the loss of a negative-advantage token whose ratio has grown far above 1 (a
    stale, off-policy sample): past ``rho = c`` its loss stays ``-A·c`` with zero gradient. verl's
    vanilla loss always applies it (``clip_ratio_c``, default 3; the paper's recipe 10).
    """
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped_term = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped_term)
    capped = torch.zeros_like(loss, dtype=torch.bool)
    if math.isfinite(clip_ratio_c):
        cap = -advantages * clip_ratio_c
        capped = (advantages < 0) & (loss > cap)
        loss = torch.where(capped, cap, loss)
    return PPOTerms(loss, clipped_term > unclipped, unclipped, capped)


def horizon(config: LossConfig) -> float | None:
    """The ``T`` of ``seq-mean-token-sum-norm`` a loss config sets (``loss_scale_factor``; 0: none)."""
    return config.loss_scale_factor or None


def clip_metrics(terms: PPOTerms, mask: Tensor, config: LossConfig) -> dict[str, Tensor]:
    """verl's clip fractions over the valid tokens: ``pg_clipfrac`` (PPO's clip active) and, with
    dual-clip on, ``pg_clipfrac_lower`` (the cap ``-A·c`` active)."""
    dtype = terms.loss.dtype
    metrics = {"pg_clipfrac": masked_mean(terms.clipped.to(dtype), mask)}
    if math.isfinite(config.clip_ratio_c):
        metrics["pg_clipfrac_lower"] = masked_mean(terms.capped.to(dtype), mask)
    return metrics


def ppo_terms(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, config: LossConfig
) -> tuple[Tensor, dict[str, Tensor]]:
    """:func:`ppo_token_losses` with a loss config's clip ranges and dual-clip, and its metrics."""
    terms = ppo_token_losses(
        logp, old_logp, advantages, config.clip_ratio_low, config.clip_ratio_high,
        config.clip_ratio_c,
    )  # fmt: skip
    return terms.loss, clip_metrics(terms, mask, config)


def token_covariance(logp: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """Centred token covariance (Cui et al., 2025, §4.2, Eq. 10), the quantity Clip-Cov and KL-Cov
    rank, over the ``N`` valid tokens of a batch:

        cov_i = (logp_i - mean_j logp_j) · (A_i - mean_j A_j),   j over valid tokens

    ``logp`` is detached (the covariance only selects tokens). Invalid positions get 0. Its mean
    over valid tokens is the batch estimate of ``Cov(log pi, A)`` that drives the entropy change.
    """
    logp = logp.detach()
    valid = mask.to(torch.bool)
    centred_logp = logp - masked_mean(logp, valid)
    centred_adv = advantages.detach() - masked_mean(advantages.detach(), valid)
    return torch.where(valid, centred_logp * centred_adv, torch.zeros_like(logp))


def aggregation_share(part_mask: Tensor, whole_mask: Tensor, mode: str) -> float:
    """The weight of a micro-batch's aggregated loss in its mini-batch's, so that
    ``sum_parts share_p · aggregate(L_p, m_p, mode) = aggregate(L, m, mode)`` for token-wise losses:

    - ``token-mean``: valid tokens of the part / valid tokens of the whole
    - ``seq-mean-token-sum``, ``seq-mean-token-mean``: sequences of the part / of the whole
    - ``seq-mean-token-sum-norm``: ``B_p · T / (B · T)`` (parts keep the whole's padded width ``T``)

    Exact for losses whose token terms do not depend on the rest of the batch. Losses that select
    tokens by a batch statistic (Clip-Cov, KL-Cov, forking tokens) are exact too when the trainer
    chooses their tokens over the whole mini-batch (``train.selection: batch``) and, for a mean
    over the selected tokens only, weighs parts by their selected tokens.
    """
    if mode == "token-mean":
        total = float(whole_mask.sum())
        return float(part_mask.sum()) / total if total else 0.0
    if mode in ("seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"):
        return part_mask.shape[0] / whole_mask.shape[0]
    raise _unknown_aggregation(mode)


def top_n_mask(values: Tensor, n: int) -> Tensor:
    """A boolean mask of the ``n`` largest entries of the 1-D ``values``; ties go to the earlier entry.

    Selects exactly what ``sort(values, descending=True, stable=True).indices[:n]`` selects, in
    O(N) instead of O(N log N): every entry above the n-th largest value ``v_n``, then the earliest
    entries equal to ``v_n`` until ``n`` are chosen.
    """
    if values.dim() != 1:
        raise ValueError(f"values must be 1-D, got shape {tuple(values.shape)}")
    if not 0 <= n <= values.numel():
        raise ValueError(f"n must be in [0, {values.numel()}], got {n}")
    if n == 0:
        return torch.zeros_like(values, dtype=torch.bool)
    threshold = _nth_largest(values, n)
    above = values > threshold
    ties = values == threshold
    wanted = n - int(above.sum())
    if int(ties.sum()) == wanted:  # the usual case: no tie to break
        return above | ties
    return above | (ties & (ties.cumsum(0) <= wanted))


def _nth_largest(values: Tensor, n: int) -> Tensor:
    """The ``n``-th largest entry of 1-D ``values``.

    For a small ``n`` out of many entries, a strided sample gives a lower bound ``t`` that leaves a
    few times ``n`` candidates; ``topk`` then runs over those only. The result is exact: if fewer
    than ``n`` entries reach ``t``, the full ``topk`` decides.
    """
    m = values.numel()
    if m >= 65_536 and n <= m // 64:
        stride = m // 8192
        sample = values[::stride]
        rank = max(
            1, int(4 * n / stride) + 1
        )  # expect ~4n entries at or above the sample's rank-th
        if rank < sample.numel():
            bound = torch.topk(sample, rank, sorted=False).values.min()
            candidates = values[values >= bound]
            if candidates.numel() >= n:
                return torch.topk(candidates, n, sorted=False).values.min()
    return torch.topk(values, n, sorted=False).values.min()


def selection_count(fraction: float, n_valid: int, rounding: str) -> int:
    """How many of ``n_valid`` tokens a fraction selects (Clip-Cov's ``r``, KL-Cov's ``k``).

    - ``reference``: ``max(1, floor(fraction · N))``, the authors' code (never 0 for a non-empty batch)
    - ``ceil``: ``ceil(fraction · N)``
    - ``floor``: ``floor(fraction · N)`` (0 when ``fraction · N < 1``: the loss falls back to its base)
    """
    if n_valid <= 0:
        return 0
    exact = round(fraction * n_valid, 9)  # 2e-4 * 5000 must be 1, not 1.0000000000000002
    if rounding == "reference":
        return min(n_valid, max(1, math.floor(exact)))
    if rounding == "ceil":
        return min(n_valid, math.ceil(exact))
    if rounding == "floor":
        return min(n_valid, math.floor(exact))
    raise ValueError(f"count_rounding must be one of reference, ceil, floor, got {rounding!r}")


def kl_estimate(logp: Tensor, ref_logp: Tensor, estimator: str) -> Tensor:
    """Per-token estimate of ``KL(pi || pi_ref)`` from tokens sampled from ``pi`` (Schulman, 2020):

    k1 = logp - ref_logp
    k2 = (logp - ref_logp)^2 / 2
    k3 = exp(ref_logp - logp) - (ref_logp - logp) - 1      (unbiased, >= 0, low variance)
    low_var_kl = clamp(k3 with ref_logp - logp clamped to [-20, 20], -10, 10)   (verl's k3)
    """
    log_ratio = ref_logp - logp
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        return torch.exp(log_ratio) - log_ratio - 1.0
    if estimator == "low_var_kl":
        clamped = log_ratio.clamp(-20.0, 20.0)
        return (torch.exp(clamped) - clamped - 1.0).clamp(-10.0, 10.0)
    raise ValueError(f"kl_estimator must be one of k1, k2, k3, low_var_kl, got {estimator!r}")


def need_entropy(name: str, entropy: Tensor | None, logp: Tensor) -> Tensor:
    """The token entropy a loss called ``name`` needs, checked: given, and shaped like ``logp``."""
    if entropy is None:
        raise ValueError(
            f"{name} needs extras['entropy']: the [batch, seq] token entropy computed from the "
            "logits with gradient (entropy_rl.metrics.token_entropy)"
        )
    if entropy.shape != logp.shape:
        raise ValueError(
            f"entropy has shape {tuple(entropy.shape)} but logp has {tuple(logp.shape)}"
        )
    return entropy


def entropy_bonus_terms(
    name: str, logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
    config: LossConfig, entropy: Tensor | None, coef: float,
) -> tuple[Tensor, dict[str, Tensor]]:  # fmt: skip
    """GRPO's clipped surrogate minus ``coef`` times the aggregated token entropy (the paper's
    entropy-loss baseline, with a fixed or a controlled coefficient):

        L = L_GRPO - coef · agg_t H_t,   H_t = -sum_v pi(v|s_t) log pi(v|s_t)
    """
    entropy = need_entropy(name, entropy, logp)
    loss, metrics = ppo_loss(logp, old_logp, advantages, mask, config)
    return loss - coef * aggregate(entropy, mask, config.loss_agg_mode, horizon(config)), metrics


def ppo_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, config: LossConfig
) -> tuple[Tensor, dict[str, Tensor]]:
    """GRPO's loss: :func:`ppo_terms` aggregated by the config's ``loss_agg_mode`` (the paper's
    surrogate, which every intervention modifies: :func:`ppo_token_losses`), and its metrics."""
    token_losses, metrics = ppo_terms(logp, old_logp, advantages, mask, config)
    return aggregate(token_losses, mask, config.loss_agg_mode, horizon(config)), metrics
