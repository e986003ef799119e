"""Outcome-reward advantage estimators, by name: ``get_advantage_estimator("grpo")(rewards)``.

Rewards come grouped as ``[n_prompts, G]`` (G responses per prompt); the advantage of a response
is broadcast to its tokens by the trainer. A group whose rewards are all equal carries no signal:
every estimator gives it exactly zero advantage, and ``zero_adv_group_frac`` counts such groups.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import torch
from torch import Tensor

from entropy_rl.losses.common import kl_estimate

__all__ = [
    "available_advantage_estimators",
    "compute_advantages",
    "dr_grpo_advantages",
    "dynamic_sampling",
    "get_advantage_estimator",
    "grpo_advantages",
    "informative_groups",
    "kl_penalized_rewards",
    "register_advantage_estimator",
    "rloo_advantages",
]

Estimator = Callable[[Tensor, float], Tensor]
_ESTIMATORS: dict[str, Estimator] = {}


def register_advantage_estimator(name: str) -> Callable[[Estimator], Estimator]:
    """Register ``fn(rewards [P, G], eps) -> advantages [P, G]`` under ``name``."""

    def decorator(fn: Estimator) -> Estimator:
        if name in _ESTIMATORS:
            raise ValueError(f"an advantage estimator named {name!r} is already registered")
        _ESTIMATORS[name] = fn
        return fn

    return decorator


def available_advantage_estimators() -> list[str]:
    return sorted(_ESTIMATORS)


def get_advantage_estimator(name: str) -> Estimator:
    try:
        return _ESTIMATORS[name]
    except KeyError:
        raise ValueError(
            f"unknown advantage estimator {name!r}; known: {', '.join(available_advantage_estimators())}"
        ) from None


def _group_mean(rewards: Tensor) -> Tensor:
    return rewards.mean(dim=-1, keepdim=True)


@register_advantage_estimator("grpo")
def grpo_advantages(rewards: Tensor, eps: float = 1e-6) -> Tensor:
    """GRPO (Shao et al., 2024; Cui et al., 2025, Eq. 3): ``A_i = (r_i - mean_group r) / (std_group r + eps)``.

    ``std`` is the unbiased group standard deviation, as in verl; a group of one gets 0.
    """
    if rewards.shape[-1] < 2:
        return torch.zeros_like(rewards)
    return (rewards - _group_mean(rewards)) / (rewards.std(dim=-1, keepdim=True) + eps)


@register_advantage_estimator("dr_grpo")
def dr_grpo_advantages(rewards: Tensor, eps: float = 1e-6) -> Tensor:
    """Dr. GRPO (Liu et al., 2025): ``A_i = r_i - mean_group r`` — no division by the std."""
    return rewards - _group_mean(rewards)


@register_advantage_estimator("rloo")
def rloo_advantages(rewards: Tensor, eps: float = 1e-6) -> Tensor:
    """RLOO (Ahmadian et al., 2024): ``A_i = r_i - mean_{j != i} r_j = G/(G-1) · (r_i - mean_group r)``."""
    group = rewards.shape[-1]
    if group < 2:
        return torch.zeros_like(rewards)
    return (rewards - _group_mean(rewards)) * group / (group - 1)


def compute_advantages(
    name: str, rewards: Tensor, eps: float = 1e-6
) -> tuple[Tensor, dict[str, float]]:
    """Advantages of ``rewards`` ``[P, G]`` by the named estimator, with exact zeros for groups
    whose rewards are all equal, and metrics ``zero_adv_group_frac`` and ``reward_std_mean``."""
    if rewards.dim() != 2:
        raise ValueError(
            f"rewards must be grouped as [n_prompts, G], got shape {tuple(rewards.shape)}"
        )
    advantages = get_advantage_estimator(name)(rewards, eps)
    flat = (rewards == rewards[..., :1]).all(dim=-1, keepdim=True)
    advantages = torch.where(flat, torch.zeros_like(advantages), advantages)
    metrics = {
        "zero_adv_group_frac": float(flat.float().mean().item()),
        "reward_std_mean": float(rewards.std(dim=-1).mean().item())
        if rewards.shape[-1] > 1
        else 0.0,
    }
    return advantages, metrics


def kl_penalized_rewards(
    rewards: Tensor, logp: Tensor, ref_logp: Tensor, mask: Tensor, coef: float, estimator: str
) -> tuple[Tensor, Tensor]:
    """Each response's reward less the KL from the reference policy, summed over its tokens
    (verl's ``use_kl_in_reward`` with a fixed coefficient; InstructGPT's per-token penalty):

        r'_i = r_i - coef · sum_t kl(logp_it, ref_logp_it),   kl: :func:`kl_estimate`'s ``estimator``

    ``rewards`` ``[B]``, the others ``[B, T]`` (``logp``: the sampling policy's). Returns the
    penalised rewards and each response's mean per-token KL (what verl logs as the penalty)."""
    kl = kl_estimate(logp, ref_logp, estimator) * mask
    tokens = mask.sum(-1).clamp_min(1)
    penalised = rewards.to(kl.dtype) - coef * kl.sum(-1)
    return penalised, kl.sum(-1) / tokens


def informative_groups(rewards: Tensor) -> Tensor:
    """DAPO's dynamic-sampling filter (Yu et al., 2025): ``[P]`` True where a group's rewards differ.

    A group whose responses all got the same reward has zero advantage under every group-relative
    estimator, so it adds no gradient; DAPO drops such groups and samples more prompts instead.
    """
    if rewards.dim() != 2:
        raise ValueError(
            f"rewards must be grouped as [n_prompts, G], got shape {tuple(rewards.shape)}"
        )
    return ~(rewards == rewards[..., :1]).all(dim=-1)


class GroupedRollouts(Protocol):
    """A batch of responses, G per prompt, prompt-major: what :func:`dynamic_sampling` filters."""

    rewards: Tensor  # [groups · G]

    def take(self, index: Tensor): ...  # the responses at ``index``, in that order
    def join(self, other): ...  # this batch, then ``other``


Batch = TypeVar("Batch", bound=GroupedRollouts)


def dynamic_sampling(
    draw: Callable[[int], Batch], groups: int, group_size: int, rounds: int
) -> tuple[Batch, int]:
    """DAPO's dynamic sampling: keep the informative groups of ``draw(0)``, ``draw(1)``, ... until
    ``groups`` are kept or ``rounds`` batches are drawn; return the first ``groups`` kept and the
    number of batches drawn. If no group is informative, the first batch is returned (its
    advantages are all 0, so it changes nothing; the metrics still describe it). Both trainers
    call this with their own ``draw``.
    """

    def informative(batch: Batch) -> Batch:
        keep = informative_groups(batch.rewards.view(-1, group_size))
        return batch.take(torch.arange(len(batch.rewards)).view(-1, group_size)[keep].flatten())

    first = draw(0)
    kept, drawn = informative(first), 1
    while len(kept.rewards) < groups * group_size and drawn < rounds:
        kept = kept.join(informative(draw(drawn)))
        drawn += 1
    if len(kept.rewards) == 0:
        return first, drawn
    return kept.take(torch.arange(min(len(kept.rewards), groups * group_size))), drawn
