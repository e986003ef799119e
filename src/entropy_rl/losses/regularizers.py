"""Regularizers that read the whole next-token distribution: SIREN and Lp-Reg.

Both act on the policy's logits, not only on the sampled tokens' log-probabilities, so they
register with ``needs_logits``: the trainers pass the tempered logits ``[batch, seq, vocab]`` as
``extras["logits"]`` (the tabular simulator: its table's rows).

- SIREN (Jiang et al., 2025, arXiv 2509.25133): the entropy of the top-p nucleus, on each
  response's peak-entropy tokens only, held near its value at the start by a squared penalty.
- Lp-Reg (Huang et al., 2025, arXiv 2510.03222): on the least likely tokens of negative
  samples, a KL toward a proxy that drops the presumed noise tokens (min-p) and renormalises,
  so that the low-probability "reasoning sparks" are not pushed to zero.

Each follows its authors' verl code (SIREN: ``dp_actor.py``'s ``efficient_top_p_sampling`` and
``mask_by_quantile``; Lp-Reg: ``core_algos.compute_policy_loss_lp_reg`` and ``apply_min_p``);
where this module differs, the docstring says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from entropy_rl.losses.common import (
    aggregate,
    horizon,
    kl_estimate,
    masked_mean,
    ppo_loss,
    ppo_terms,
    selection_count,
)
from entropy_rl.losses.config import AGGREGATIONS, LossConfig
from entropy_rl.losses.registry import Controller, register_policy_loss
from entropy_rl.settings import choice, number

__all__ = [
    "LP_REG_SELECTOR",
    "SIREN_ANCHOR",
    "LpRegConfig",
    "SirenConfig",
    "lp_reg_loss",
    "min_p_logprobs",
    "peak_tokens",
    "siren_loss",
    "top_p_entropy",
]


def _need_logits(name: str, logits: Tensor | None, logp: Tensor) -> Tensor:
    if logits is None:
        raise ValueError(
            f"{name} needs extras['logits']: the [batch, seq, vocab] logits of the policy "
            "(the trainers pass them to a loss registered with needs_logits)"
        )
    if logits.shape[:-1] != logp.shape:
        raise ValueError(
            f"logits have shape {tuple(logits.shape)}; expected {tuple(logp.shape)} + (vocab,)"
        )
    return logits


# -- SIREN ---------------------------------------------------------------------------------------


def top_p_entropy(logits: Tensor, p: float) -> Tensor:
    """The entropy of each distribution's nucleus, renormalised: ``[..., V] -> [...]``.

        N_t = {v : sum of the probabilities ranked above v and v's own < p}
        q_t(v) = pi_t(v) / sum_{u in N_t} pi_t(u)  on N_t,    H^p_t = -sum_{v in N_t} q_t(v) log q_t(v)

    As the authors' ``efficient_top_p_sampling``: the token whose cumulative probability reaches
    ``p`` is left out (an empty nucleus, a top token above ``p``, has entropy 0); the choice of
    the nucleus carries no gradient, its probabilities do."""
    probs = torch.softmax(logits, dim=-1)
    ranked, order = probs.detach().sort(dim=-1, descending=True)
    keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, ranked.cumsum(-1) < p)
    kept = probs * keep
    q = kept / kept.sum(-1, keepdim=True).clamp_min(1e-30)
    return -(q * torch.log(torch.where(keep, q, torch.ones_like(q)))).sum(-1)


def peak_tokens(entropy: Tensor, mask: Tensor, quantile: float) -> Tensor:
    """Each response's tokens whose entropy is above its ``quantile`` (linear interpolation over
    its valid tokens, as ``torch.nanquantile``): bool ``[batch, seq]``. The authors' mask is not
    restricted to the valid tokens; this one is."""
    valid = mask.to(torch.bool)
    spread = entropy.detach().masked_fill(~valid, float("nan"))
    spread = spread.to(torch.promote_types(spread.dtype, torch.float32))  # nanquantile: no half
    bound = torch.nanquantile(spread, quantile, dim=-1, keepdim=True)
    return (spread > bound) & valid


@dataclass(frozen=True)
class SirenConfig(LossConfig):
    """SIREN: the weight of the anchored penalty, the nucleus, the peak tokens' quantile and how
    the selected entropies become one number (the authors' defaults)."""

    section: ClassVar[str] = "siren"

    coef: float = number(
        0.005, 0.0, doc="weight of (selected entropy - anchor)^2 (the authors' 0.005)"
    )
    top_p: float = number(
        0.8, 0.0, 1.0, low_open=True, doc="the nucleus whose entropy counts (the authors' 0.8)"
    )
    peak_quantile: float = number(
        0.8, 0.0, 1.0, high_open=True,
        doc="tokens above this quantile of their response's nucleus entropy count (0.8: top 20%)",
    )  # fmt: skip
    entropy_agg_mode: str = choice(
        "seq-mean-token-mean", AGGREGATIONS, doc="how the selected entropies become one number"
    )


def _anchor_update(
    config: LossConfig, state: dict[str, float], row: Mapping[str, Any]
) -> tuple[dict[str, float], dict[str, Any]]:
    """The anchor is the selected entropy of the run's first step, then fixed."""
    if not state["anchored"] and row.get("siren_entropy") is not None:
        state = {"anchor": float(row["siren_entropy"]), "anchored": 1.0}
    return state, {"siren_anchor": state["anchor"] if state["anchored"] else None}


SIREN_ANCHOR = Controller(
    init=lambda config: {"anchor": 0.0, "anchored": 0.0},
    update=_anchor_update,
    loss_kwargs=lambda config, state: {"anchor": state["anchor"] if state["anchored"] else None},
)


@register_policy_loss("siren", SirenConfig, controller=SIREN_ANCHOR, needs_logits=True)
def siren_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, config: SirenConfig, *,
    logits: Tensor | None = None, anchor: float | None = None, **extras: Any,
) -> tuple[Tensor, dict]:  # fmt: skip
    """SIREN (Jiang et al., 2025, arXiv 2509.25133): GRPO plus a squared pull of the nucleus
    entropy of each response's peak-entropy tokens toward its value at the start of the run.

        H^p_t = :func:`top_p_entropy` (p = top_p),   S = :func:`peak_tokens` (H^p, peak_quantile)
        E = agg_{t in S} H^p_t   (entropy_agg_mode),   L = L_GRPO + coef · (E - E_anchor)^2

    ``E_anchor`` is the first step's ``E`` (the controller ``SIREN_ANCHOR``; the authors take it
    from the first batch before its update, this suite averages it over the first step's
    mini-batches), so the first step trains plain GRPO. Unlike an entropy bonus the penalty pulls
    both ways: it stops the collapse without letting the entropy explode, and the nucleus and the
    peak tokens keep the long tail of noise tokens out of it."""
    logits = _need_logits("siren", logits, logp)
    nucleus = top_p_entropy(logits, config.top_p)
    selected = peak_tokens(nucleus, mask, config.peak_quantile)
    entropy = aggregate(nucleus, selected, config.entropy_agg_mode, horizon(config))
    loss, metrics = ppo_loss(logp, old_logp, advantages, mask, config)
    if anchor is not None:
        loss = loss + config.coef * (entropy - anchor) ** 2
    metrics["siren_entropy"] = entropy.detach()
    metrics["cov_selected_frac"] = masked_mean(selected.to(logp.dtype), mask)
    return loss, metrics


# -- Lp-Reg --------------------------------------------------------------------------------------


def min_p_logprobs(logits: Tensor, tokens: Tensor, min_p: float) -> Tensor:
    """Log-probabilities of ``tokens`` under the min-p proxy of each distribution, no gradient:

        keep v where pi(v) >= min_p · max_u pi(u);   pi_proxy = pi renormalised on the kept tokens

    ``logits`` ``[..., V]``, ``tokens`` ``[...]``. A token the filter drops (presumed noise) gets
    about -1e4, as the authors' ``apply_min_p`` sets dropped logits to -1e4."""
    with torch.no_grad():
        probs = torch.softmax(logits, dim=-1)
        noise = probs < min_p * probs.amax(-1, keepdim=True)
        filtered = logits.masked_fill(noise, -1e4)
        return torch.log_softmax(filtered, dim=-1).gather(-1, tokens[..., None]).squeeze(-1)


@dataclass(frozen=True)
class LpRegConfig(LossConfig):
    """Lp-Reg: the min-p threshold of the proxy, the share of the least likely tokens of
    negative (and positive) samples it regularizes, and the KL's weight (the authors' 14B/32B
    scripts)."""

    section: ClassVar[str] = "lp_reg"

    min_p: float = number(
        0.02, 0.0, 1.0, doc="the proxy drops tokens below min_p × the top probability (noise)"
    )
    neg_fraction: float = number(
        0.01, 0.0, 1.0, doc="share of the negative samples' tokens, least likely first, regularized"
    )
    pos_fraction: float = number(0.0, 0.0, 1.0, doc="the same for positive samples (0: none)")
    beta: float = number(1.0, 0.0, doc="weight of the KL to the proxy on those tokens")
    kl_type: str = choice(
        "low_var_kl", ("k1", "k2", "k3", "low_var_kl"), doc="the KL estimator toward the proxy"
    )


def _least_likely(logp: Tensor, candidates: Tensor, fraction: float) -> Tensor:
    """The ``max(1, floor(fraction · n))`` candidates with the lowest log-probability, chosen
    only when that count is above 1 (the authors' rule), as a bool mask."""
    chosen = torch.zeros_like(candidates)
    count = selection_count(fraction, int(candidates.sum()), "reference")
    if count <= 1:
        return chosen
    scores = logp.detach().masked_fill(~candidates, float("inf")).flatten()
    chosen.view(-1)[torch.topk(scores, count, largest=False).indices] = True
    return chosen


def _lp_reg_select(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, config: LpRegConfig,
    **extras: Any,
) -> Tensor:  # fmt: skip
    """Lp-Reg's candidates, over the whole mini-batch: the least likely tokens of negative samples
    (``neg_fraction`` of them) and of positive ones (``pos_fraction``)."""
    valid = mask.to(torch.bool)
    negative = _least_likely(logp, valid & (advantages < 0), config.neg_fraction)
    positive = _least_likely(logp, valid & (advantages > 0), config.pos_fraction)
    return negative | positive


LP_REG_SELECTOR = _lp_reg_select


@register_policy_loss("lp_reg", LpRegConfig, selector=_lp_reg_select, needs_logits=True)
def lp_reg_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, config: LpRegConfig, *,
    logits: Tensor | None = None, selected: Tensor | None = None, tokens: Tensor | None = None,
    **extras: Any,
) -> tuple[Tensor, dict]:  # fmt: skip
    """Lp-Reg (Huang et al., 2025, arXiv 2510.03222): GRPO, except on the least likely tokens of
    negative samples that the min-p proxy keeps, where the clipped surrogate gives way to the
    plain one plus a KL toward the proxy:

        S = the neg_fraction least likely tokens with A < 0 (over the mini-batch),
            those with logp_t < log pi_proxy(y_t) (:func:`min_p_logprobs`; noise is dropped)
        L_t = -A_t r_t + beta · KL(logp_t, log pi_proxy(y_t))   on S,   GRPO's clipped term elsewhere

    The proxy renormalises the distribution without its noise tokens, so it gives a surviving
    low-probability token more probability than the policy does: the KL pulls such a "reasoning
    spark" up where the negative advantage would push it to zero. The proxy is the current
    policy's, detached (the authors' on-policy variant; their scripts take the old policy's,
    the same at the first update). ``tokens``: the sampled token ids ``[batch, seq]``; without
    them the token whose log-probability under ``logits`` is ``logp`` stands for the sampled
    one (exact: tokens of equal probability have equal proxy probability)."""
    logits = _need_logits("lp_reg", logits, logp)
    if tokens is None:
        tokens = _sampled_tokens(logits, logp)
    proxy = min_p_logprobs(logits, tokens, config.min_p)
    chosen = selected & (logp.detach() < proxy) & mask.to(torch.bool)
    terms, metrics = ppo_terms(logp, old_logp, advantages, mask, config)
    ratio = torch.exp(logp - old_logp)
    regularized = -advantages * ratio + config.beta * kl_estimate(logp, proxy, config.kl_type)
    token_losses = torch.where(chosen, regularized, terms)
    loss = aggregate(token_losses, mask, config.loss_agg_mode, horizon(config))
    metrics["cov_selected_frac"] = masked_mean(chosen.to(logp.dtype), mask)
    metrics["cov_selected_count"] = chosen.sum()
    return loss, metrics


def _sampled_tokens(logits: Tensor, logp: Tensor) -> Tensor:
    """The token of each position whose log-probability under ``logits`` is ``logp``."""
    logq = torch.log_softmax(logits.detach(), dim=-1)
    return (logq - logp.detach()[..., None]).abs().argmin(-1)
