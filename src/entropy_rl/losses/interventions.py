"""Entropy interventions from after the paper, each one registered loss, and the entropy controller.

- ``dr_grpo``: Dr. GRPO (Liu et al., 2025, *Understanding R1-Zero-Like Training: A Critical
  Perspective*) — no length normalisation (with ``advantage: dr_grpo``: no std either);
- ``forking_tokens``: Wang et al., 2025, *Beyond the 80/20 Rule: High-Entropy Minority Tokens Drive
  Effective Reinforcement Learning for LLM Reasoning* — gradient only on the top 20% by entropy;
- ``entropy_advantage``: Cheng et al., 2025, *Reasoning with Exploration: An Entropy Perspective* —
  a clipped entropy term added to the advantage;
- ``pos_neg_weight``: Zhu et al., 2025, *The Surprising Effectiveness of Negative Reinforcement in
  LLM Reasoning* (W-REINFORCE) — positive samples down-weighted;
- ``entropy_target``: ours — an entropy bonus whose coefficient a PI controller adapts each step
  to hold a target entropy, in the spirit of SAC's automatic temperature (Haarnoja et al., 2018);
- ``adaptive_entropy``: He et al., 2025, *Skywork Open Reasoner 1 Technical Report* — an entropy
  bonus on only while the entropy is under a target, its coefficient stepped up or down each step.

DAPO's dynamic sampling (Yu et al., 2025) is not a loss: it is the trainers' ``dynamic_sampling``
option (see :func:`entropy_rl.advantages.informative_groups`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from entropy_rl.losses.common import (
    aggregate,
    entropy_bonus_terms,
    horizon,
    masked_mean,
    need_entropy,
    ppo_loss,
    ppo_terms,
    top_n_mask,
)
from entropy_rl.losses.config import (
    AdaptiveEntropyConfig,
    DrGRPOConfig,
    EntropyAdvantageConfig,
    EntropyTargetConfig,
    ForkingTokensConfig,
    PosNegWeightConfig,
)
from entropy_rl.losses.registry import Controller, register_policy_loss

__all__ = [
    "ADAPTIVE_ENTROPY",
    "ENTROPY_TARGET",
    "adaptive_coef",
    "adaptive_entropy_loss",
    "dr_grpo_loss",
    "entropy_advantage_loss",
    "entropy_target_loss",
    "forking_tokens_loss",
    "next_coef",
    "pos_neg_weight_loss",
    "shaped_advantages",
]


@register_policy_loss("dr_grpo", DrGRPOConfig)
def dr_grpo_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, config: DrGRPOConfig,
    **extras: Any,
) -> tuple[Tensor, dict]:  # fmt: skip
    """Dr. GRPO (Liu et al., 2025): GRPO without its two length and difficulty biases.

        L = sum_{b,t} m_bt · max(-A_b rho_bt, -A_b clip(rho_bt, 1 - eps, 1 + eps)) / (B · T)

    A constant normaliser ``B · T`` instead of each response's length (so long wrong answers are
    not favoured); ``T`` is ``loss_scale_factor``, which the trainer sets to the maximum response
    length (TRL: ``max_completion_length``), so the loss depends on neither the prompt's length
    nor the step's longest response; and — with the method's ``advantage: dr_grpo`` — ``A = r - mean_group r`` with no
    division by the group's std (so easy and hard questions weigh alike).
    """
    return ppo_loss(logp, old_logp, advantages, mask, config)


def forking_selection(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
    config: ForkingTokensConfig, *, entropy: Tensor | None = None, **extras: Any,
) -> Tensor:  # fmt: skip
    """The forking tokens: the ``ceil(rho · N)`` valid tokens of highest entropy (ties: the
    earlier token of the flattened ``[batch, seq]``)."""
    entropy = need_entropy("forking_tokens", entropy, logp).detach()
    valid = mask.to(torch.bool)
    n_valid = int(valid.sum())
    n_pick = min(n_valid, math.ceil(round(config.top_fraction * n_valid, 9)))
    ranked = torch.where(valid, entropy, -torch.inf).flatten()
    return top_n_mask(ranked, n_pick).view_as(valid) & valid


@register_policy_loss("forking_tokens", ForkingTokensConfig, selector=forking_selection)
def forking_tokens_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
    config: ForkingTokensConfig, *, entropy: Tensor | None = None, selected: Tensor,
    **extras: Any,
) -> tuple[Tensor, dict]:  # fmt: skip
    """High-entropy minority tokens (Wang et al., 2025): the policy gradient of forking tokens only.

        F = the n = ceil(rho · N) valid tokens of highest entropy H_t (ties: the earlier token)
        L = agg_{t in F} max(-A_t rho_t, -A_t clip(rho_t, 1 - eps, 1 + eps))

    The other ``1 - rho`` of the tokens get exactly zero gradient; ``rho = 0.2`` in the paper. The
    entropy only selects (it is detached). ``entropy_threshold`` reports the n-th largest entropy.

    The aggregation runs over the selected tokens (``normalizer: selected``), as the authors' code
    does: ``agg_loss(pg_losses, response_mask * entropy_top_mask)`` in
    Shenzhi-Wang/Beyond-the-80-20-Rule-RLVR, ``verl/trainer/ppo/core_algos.py``
    (``compute_policy_loss_vanilla``, with ``get_global_entropy_top_mask``, whose count is the same
    ``ceil(rho · N)``). ``normalizer: all`` keeps the mean over every valid token, as TRL's
    ``top_entropy_quantile`` does: the same direction, ``1 / rho`` times smaller at equal lr.
    """
    entropy = need_entropy("forking_tokens", entropy, logp).detach()
    valid = mask.to(torch.bool)
    n_valid = int(valid.sum())
    forking = selected & valid  # forking_selection's, unless the caller chose over a larger batch
    n_pick = int(forking.sum())
    token_losses, metrics = ppo_terms(logp, old_logp, advantages, mask, config)
    scope = forking if config.normalizer == "selected" else valid  # the mean's tokens
    loss = (
        aggregate(token_losses * forking, scope, config.loss_agg_mode, horizon(config))
        if n_pick
        else logp.sum() * 0.0
    )
    threshold = entropy[forking].min() if n_pick else torch.tensor(0.0)
    return loss, {**metrics, "forking_frac": n_pick / max(n_valid, 1),
                  "entropy_threshold": threshold}  # fmt: skip


def shaped_advantages(advantages: Tensor, entropy: Tensor, alpha: float, kappa: float) -> Tensor:
    """Cheng et al. (2025): ``A'_t = A_t + min(alpha · H_t, |A_t| / kappa)``, ``H_t`` detached.

    The clip keeps the entropy term from flipping a negative advantage's sign or dominating it.
    """
    bonus = torch.minimum(alpha * entropy.detach(), advantages.abs() / kappa)
    return advantages + bonus


@register_policy_loss("entropy_advantage", EntropyAdvantageConfig)
def entropy_advantage_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
    config: EntropyAdvantageConfig, *, entropy: Tensor | None = None, **extras: Any,
) -> tuple[Tensor, dict]:  # fmt: skip
    """Entropy-based advantage shaping (Cheng et al., 2025): exploration through the advantage.

        A'_t = A_t + min(alpha · H_t^detach, |A_t| / kappa),   alpha = 0.4, kappa = 2
        L    = agg_t max(-A'_t rho_t, -A'_t clip(rho_t, 1 - eps, 1 + eps))

    Unlike the entropy bonus, no gradient flows through the entropy: high-entropy tokens of a
    response simply get a larger (positive) push, and a zero advantage stays zero.
    """
    entropy = need_entropy("entropy_advantage", entropy, logp)
    shaped = shaped_advantages(advantages, entropy, config.alpha, config.kappa)
    loss, metrics = ppo_loss(logp, old_logp, shaped, mask, config)
    return loss, {
        **metrics,
        "advantage_shift": masked_mean(shaped - advantages, mask),
    }


@register_policy_loss("pos_neg_weight", PosNegWeightConfig)
def pos_neg_weight_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
    config: PosNegWeightConfig, **extras: Any,
) -> tuple[Tensor, dict]:  # fmt: skip
    """Positive / negative sample reweighting (Zhu et al., 2025, W-REINFORCE):

        A'_t = w_pos · A_t  if A_t > 0,   w_neg · A_t  otherwise;   L = GRPO's surrogate with A'

    Positive samples sharpen the policy around what it already does (entropy falls); negative
    samples push mass away from wrong answers onto everything else (entropy is kept). The paper's
    W-REINFORCE uses ``w_pos = 0.1, w_neg = 1``.
    """
    weights = torch.where(
        advantages > 0,
        advantages.new_tensor(config.positive_weight),
        advantages.new_tensor(config.negative_weight),
    )
    return ppo_loss(logp, old_logp, advantages * weights, mask, config)


def next_coef(
    integral: float, entropy: float, target: float, kp: float, ki: float, coef_max: float
) -> tuple[float, float]:
    """One PI step: ``(integral, coef)`` after a step whose policy had entropy ``entropy``.

        e = (target - entropy) / target
        integral' = clamp(integral + ki · e, 0, coef_max);   coef = clamp(integral' + kp · e, 0, coef_max)

    Entropy below target raises the coefficient, above target lowers it; the relative error makes
    the gains independent of the entropy's scale, and clamping the integral stops wind-up while
    the entropy is still falling towards the target.
    """
    if not all(math.isfinite(x) for x in (integral, entropy, target, kp, ki)) or target <= 0:
        raise ValueError(
            f"controller inputs must be finite with target > 0, got integral={integral}, "
            f"entropy={entropy}, target={target}, kp={kp}, ki={ki}"
        )
    error = (target - entropy) / target
    integral = min(coef_max, max(0.0, integral + ki * error))
    return integral, min(coef_max, max(0.0, integral + kp * error))


def _target_init(config: EntropyTargetConfig) -> dict[str, float]:
    return {"integral": config.coef_init, "coef": config.coef_init}


def _target_update(
    config: EntropyTargetConfig, state: dict[str, float], row: Mapping[str, Any]
) -> tuple[dict[str, float], dict[str, float]]:
    """After a step whose policy had mean token entropy ``row["entropy"]``: the next state, and
    the target and the next step's coefficient for the metrics row."""
    integral, coef = next_coef(
        state["integral"], row["entropy"], config.target, config.kp, config.ki, config.coef_max
    )
    return {"integral": integral, "coef": coef}, {
        "entropy_target": config.target,
        "entropy_coef_next": coef,
    }


ENTROPY_TARGET = Controller(
    init=_target_init,
    update=_target_update,
    loss_kwargs=lambda config, state: {"coef": state["coef"]},
)


@register_policy_loss("entropy_target", EntropyTargetConfig, controller=ENTROPY_TARGET)
def entropy_target_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
    config: EntropyTargetConfig, *, entropy: Tensor | None = None, coef: float | None = None,
    **extras: Any,
) -> tuple[Tensor, dict]:  # fmt: skip
    """Entropy-target control (ours): GRPO minus ``coef_t`` times the mean token entropy, where the
    loss's controller (``ENTROPY_TARGET``) sets ``coef_t`` each step to hold ``target`` nats.

        L = L_GRPO - coef_t · agg_t H_t
        e_t = (target - H_t) / target,   I_{t+1} = clamp(I_t + ki · e_t, 0, coef_max),
        coef_{t+1} = clamp(I_{t+1} + kp · e_t, 0, coef_max)

    The entropy bonus with a fixed coefficient either collapses or explodes (the paper's Figure);
    the controller closes the loop. Entropy responds to the coefficient like an integrator (the
    bonus moves the logits step after step), so a pure integral controller, such as SAC's
    temperature update, oscillates around the target; the proportional term damps it. The
    coefficient never goes below 0: the controller can stop a collapse, not speed one up. ``coef``
    defaults to ``coef_init`` (a trainer without the controller gets a plain entropy bonus).
    """
    coef = config.coef_init if coef is None else coef
    loss, metrics = entropy_bonus_terms(
        "entropy_target", logp, old_logp, advantages, mask, config, entropy, coef
    )
    return loss, {**metrics, "entropy_coef": coef}


def adaptive_coef(
    coef: float, entropy: float, target: float, delta: float, low: float, high: float
) -> tuple[float, bool]:
    """One step of Skywork-OR1's rule: ``(coef, on)`` after a step whose policy had entropy
    ``entropy``.

        coef' = clip(coef + delta, low, high)  if H < target,   clip(coef - delta, low, high)  else
        on'   = H < target   (the bonus acts with coef' on the next step only while on')
    """
    if not all(math.isfinite(x) for x in (coef, entropy, target, delta)):
        raise ValueError(
            f"controller inputs must be finite, got coef={coef}, entropy={entropy}, "
            f"target={target}, delta={delta}"
        )
    under = entropy < target
    return min(high, max(low, coef + (delta if under else -delta))), under


def _adaptive_update(
    config: AdaptiveEntropyConfig, state: dict[str, float], row: Mapping[str, Any]
) -> tuple[dict[str, float], dict[str, float]]:
    c = config
    coef, on = adaptive_coef(
        state["coef"], row["entropy"], c.target, c.delta, c.coef_min, c.coef_max
    )
    return {"coef": coef, "on": float(on)}, {
        "entropy_target": c.target,
        "entropy_coef_next": coef * on,
    }


ADAPTIVE_ENTROPY = Controller(
    init=lambda config: {"coef": config.coef_init, "on": 1.0},  # the first step's bonus acts
    update=_adaptive_update,
    loss_kwargs=lambda config, state: {"coef": state["coef"] * state["on"]},
)


@register_policy_loss("adaptive_entropy", AdaptiveEntropyConfig, controller=ADAPTIVE_ENTROPY)
def adaptive_entropy_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
    config: AdaptiveEntropyConfig, *, entropy: Tensor | None = None, coef: float | None = None,
    **extras: Any,
) -> tuple[Tensor, dict]:  # fmt: skip
    """Adaptive entropy control (Skywork-OR1): an entropy bonus on while entropy is under a target.

    He et al., 2025, arXiv 2505.22312; TRL's ``use_adaptive_entropy``. GRPO minus ``coef_t``
    times the aggregated token entropy, where the loss's controller (``ADAPTIVE_ENTROPY``, :func:`adaptive_coef`) raises ``coef_t`` by ``delta``
    after each step whose entropy was under ``target``, lowers it otherwise, and switches the
    bonus off while the entropy is over the target.

        L = L_GRPO - coef_t · on_t · agg_t H_t

    Unlike ``entropy_target``'s PI controller, the step is fixed in size and sign only, so the
    coefficient ramps linearly while the entropy stays low (the authors' code:
    ``verl/trainer/ppo/core_algos.py``, ``EntController``). ``coef`` defaults to ``coef_init``.
    """
    coef = config.coef_init if coef is None else coef
    loss, metrics = entropy_bonus_terms(
        "adaptive_entropy", logp, old_logp, advantages, mask, config, entropy, coef
    )
    return loss, {**metrics, "entropy_coef": coef}
