"""Outcome-reward advantage estimators, by name: ``compute_advantages("grpo", rewards)``.

Rewards come grouped as ``[n_prompts, G]`` (G responses per prompt); the advantage of a response
is broadcast to its tokens by the trainer. Each estimator is a registered unit: its function,
its settings class (``advantage_config``: the k of pass@k, QAE's quantile; most have none) and
whether a group whose rewards are all equal gets exactly zero advantage (``zero_flat``: every
group-relative estimator; REINFORCE++'s whitening over the whole batch gives such a group the
batch's signal, as verl's does). ``zero_adv_group_frac`` counts the groups whose rewards are equal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from torch import Tensor

from entropy_rl.losses.common import kl_estimate
from entropy_rl.settings import Settings, choice, integer, number

__all__ = [
    "AdvantageConfig",
    "PassAtKConfig",
    "QuantileConfig",
    "advantage_config_class",
    "available_advantage_estimators",
    "compute_advantages",
    "dr_grpo_advantages",
    "dynamic_sampling",
    "get_advantage_estimator",
    "grpo_advantages",
    "grpo_passk_advantages",
    "informative_groups",
    "kl_penalized_rewards",
    "make_advantage_config",
    "passk_analytic_advantages",
    "qae_advantages",
    "register_advantage_estimator",
    "reinforce_plus_plus_advantages",
    "reinforce_plus_plus_baseline_advantages",
    "rloo_advantages",
]


@dataclass(frozen=True)
class AdvantageConfig(Settings):
    """Settings of an advantage estimator; the base has none (GRPO, Dr. GRPO, RLOO, REINFORCE++)."""

    section: ClassVar[str] = "advantage_config"

    def check_group(self, group_size: int) -> None:
        """Constraints against the group size G (pass@k's k <= G); none by default."""


@dataclass(frozen=True)
class PassAtKConfig(AdvantageConfig):
    """Pass@k training (Chen et al., 2025): the k of the pass@k the advantage optimises."""

    section: ClassVar[str] = "passk_analytic"

    k: int = integer(
        4, 1, doc="pass@k's k: the group reward is whether any of k responses is right"
    )

    def check_group(self, group_size: int) -> None:
        if self.k > group_size:
            raise ValueError(
                f"passk_analytic.k ({self.k}) must be <= group_size ({group_size}): pass@k is "
                "estimated from the group's G responses"
            )


@dataclass(frozen=True)
class QuantileConfig(AdvantageConfig):
    """QAE (Wu et al., 2025): the group quantile that replaces GRPO's mean as the baseline."""

    section: ClassVar[str] = "qae"

    quantile: float = number(
        0.4, 0.0, 1.0, low_open=True, doc="K: the baseline is the group's K-quantile of rewards"
    )
    scale: str = choice("std", ("std", "none"), doc="divide by the group std (as GRPO) or not")


Estimator = Callable[[Tensor, float, Any, Tensor | None], Tensor]


@dataclass(frozen=True)
class _Spec:
    fn: Estimator
    config_cls: type[AdvantageConfig]
    zero_flat: bool


_ESTIMATORS: dict[str, _Spec] = {}


def register_advantage_estimator(
    name: str, config_cls: type[AdvantageConfig] = AdvantageConfig, zero_flat: bool = True
) -> Callable[[Estimator], Estimator]:
    """Register ``fn(rewards [P, G], eps, config, lengths) -> advantages [P, G]`` under ``name``
    (``lengths``: each response's token count ``[P, G]``, or ``None`` where all count alike)."""

    def decorator(fn: Estimator) -> Estimator:
        if name in _ESTIMATORS:
            raise ValueError(f"an advantage estimator named {name!r} is already registered")
        _ESTIMATORS[name] = _Spec(fn, config_cls, zero_flat)
        return fn

    return decorator


def available_advantage_estimators() -> list[str]:
    return sorted(_ESTIMATORS)


def _spec(name: str) -> _Spec:
    try:
        return _ESTIMATORS[name]
    except KeyError:
        raise ValueError(
            f"unknown advantage estimator {name!r}; known: {', '.join(available_advantage_estimators())}"
        ) from None


def get_advantage_estimator(name: str) -> Estimator:
    """The registered function of estimator ``name`` (an unknown name is an error listing them)."""
    return _spec(name).fn


def advantage_config_class(name: str) -> type[AdvantageConfig]:
    """The settings class of estimator ``name``."""
    return _spec(name).config_cls


def make_advantage_config(
    name: str, values: Mapping[str, Any] | AdvantageConfig | None = None
) -> AdvantageConfig:
    """The validated settings of estimator ``name`` from a mapping (e.g. YAML) or ``None``."""
    config_cls = _spec(name).config_cls
    if isinstance(values, AdvantageConfig):
        return values
    if values and config_cls is AdvantageConfig:
        raise ValueError(
            f"advantage {name!r} takes no advantage_config, got keys {sorted(values)}; remove them"
        )
    return config_cls.from_dict(dict(values or {}))


def _group_mean(rewards: Tensor) -> Tensor:
    return rewards.mean(dim=-1, keepdim=True)


def _group_std(rewards: Tensor) -> Tensor:
    return rewards.std(dim=-1, keepdim=True)


@register_advantage_estimator("grpo")
def grpo_advantages(
    rewards: Tensor, eps: float = 1e-6, config: Any = None, lengths: Tensor | None = None
) -> Tensor:
    """GRPO (Shao et al., 2024; Cui et al., 2025, Eq. 3): ``A_i = (r_i - mean_group r) / (std_group r + eps)``.

    ``std`` is the unbiased group standard deviation, as in verl; a group of one gets 0.
    """
    if rewards.shape[-1] < 2:
        return torch.zeros_like(rewards)
    return (rewards - _group_mean(rewards)) / (_group_std(rewards) + eps)


@register_advantage_estimator("dr_grpo")
def dr_grpo_advantages(
    rewards: Tensor, eps: float = 1e-6, config: Any = None, lengths: Tensor | None = None
) -> Tensor:
    """Dr. GRPO (Liu et al., 2025): ``A_i = r_i - mean_group r`` — no division by the std."""
    return rewards - _group_mean(rewards)


@register_advantage_estimator("rloo")
def rloo_advantages(
    rewards: Tensor, eps: float = 1e-6, config: Any = None, lengths: Tensor | None = None
) -> Tensor:
    """RLOO (Ahmadian et al., 2024): ``A_i = r_i - mean_{j != i} r_j = G/(G-1) · (r_i - mean_group r)``."""
    group = rewards.shape[-1]
    if group < 2:
        return torch.zeros_like(rewards)
    return (rewards - _group_mean(rewards)) * group / (group - 1)


def _whiten_over_tokens(values: Tensor, lengths: Tensor | None) -> Tensor:
    """``(v - mu) / sqrt(var + 1e-8)`` over every token of the batch (a response's value on each
    of its ``lengths`` tokens), as verl's ``masked_whiten``: ``mu = sum L v / (sum L + 1e-8)``,
    ``var`` the token-weighted variance times ``N / (N - 1)``, ``N = sum L`` tokens."""
    weights = torch.ones_like(values) if lengths is None else lengths.to(values.dtype)
    tokens = weights.sum()
    if tokens <= 1:
        raise ValueError(
            f"REINFORCE++ whitens over the batch's tokens and needs at least 2, got {float(tokens):g}"
        )
    mean = (weights * values).sum() / (tokens + 1e-8)
    variance = (weights * (values - mean) ** 2).sum() / (tokens + 1e-8) * tokens / (tokens - 1)
    return (values - mean) * torch.rsqrt(variance + 1e-8)


@register_advantage_estimator("reinforce_plus_plus", zero_flat=False)
def reinforce_plus_plus_advantages(
    rewards: Tensor, eps: float = 1e-6, config: Any = None, lengths: Tensor | None = None
) -> Tensor:
    """REINFORCE++ (Hu, 2025), outcome reward, gamma 1: each token's return is its response's
    reward, whitened over every token of the batch (no group baseline):

        A_i = (r_i - mu_batch) / sqrt(var_batch + 1e-8)    (token-weighted: verl's masked_whiten)

    A group whose rewards are all equal keeps its signal relative to the batch."""
    return _whiten_over_tokens(rewards, lengths)


@register_advantage_estimator("reinforce_plus_plus_baseline", zero_flat=False)
def reinforce_plus_plus_baseline_advantages(
    rewards: Tensor, eps: float = 1e-6, config: Any = None, lengths: Tensor | None = None
) -> Tensor:
    """REINFORCE++-baseline (Hu, 2025): the group mean subtracted (a group of one: 0), then
    whitened over every token of the batch as :func:`reinforce_plus_plus_advantages`:

        A_i = whiten_batch(r_i - mean_group r)"""
    centred = rewards - (_group_mean(rewards) if rewards.shape[-1] > 1 else 0.0)
    return _whiten_over_tokens(centred, lengths)


@register_advantage_estimator("grpo_passk")
def grpo_passk_advantages(
    rewards: Tensor, eps: float = 1e-6, config: Any = None, lengths: Tensor | None = None
) -> Tensor:
    """Pass@k with k = G (PKPO, Walder & Karkhanis, 2025; verl's ``grpo_passk``): the
    leave-one-out gradient of the group's maximum reward, which only its best response has:

        A_best = (r_max - r_second) / (std_group r + eps),   A_i = 0 for every other response

    (tied best responses: all 0, as ``max`` over the others does not change)."""
    if rewards.shape[-1] < 2:
        raise ValueError("grpo_passk needs at least 2 responses per group (group_size >= 2)")
    top, index = torch.topk(rewards, 2, dim=-1)
    gap = (top[..., :1] - top[..., 1:2]) / (_group_std(rewards) + eps)
    return torch.zeros_like(rewards).scatter(-1, index[..., :1], gap)


@register_advantage_estimator("passk_analytic", PassAtKConfig)
def passk_analytic_advantages(
    rewards: Tensor, eps: float = 1e-6, config: Any = None, lengths: Tensor | None = None
) -> Tensor:
    """Pass@k training with the analytic advantage (Chen et al., 2025, arXiv 2508.10751): the
    group reward is pass@k over all size-k subsets of the G responses, c of them right (reward 1):

        rho   = 1 - C(G - c, k) / C(G, k),        sigma = sqrt(rho (1 - rho))
        A_pos = (1 - rho) / (sigma + eps)
        A_neg = (1 - rho - C(G - c - 1, k - 1) / C(G - 1, k - 1)) / (sigma + eps)

    A response is right when its reward is 1 (the authors' binary rewards); every other reward
    counts as wrong (their code leaves a reward that is neither 0 nor 1 as its own advantage)."""
    config = config or PassAtKConfig()
    group, k = rewards.shape[-1], config.k
    config.check_group(group)
    right = rewards == 1
    out = torch.zeros_like(rewards)
    for row, c in enumerate(right.sum(-1).tolist()):
        rho = 1.0 - math.comb(group - c, k) / math.comb(group, k)
        sigma = math.sqrt(rho * (1.0 - rho))
        wrong_share = (
            math.comb(group - c - 1, k - 1) / math.comb(group - 1, k - 1) if c < group else 0.0
        )
        positive, negative = (1 - rho) / (sigma + eps), (1 - rho - wrong_share) / (sigma + eps)
        out[row] = torch.where(right[row], positive, negative)
    return out


@register_advantage_estimator("qae", QuantileConfig)
def qae_advantages(
    rewards: Tensor, eps: float = 1e-6, config: Any = None, lengths: Tensor | None = None
) -> Tensor:
    """QAE (Wu et al., 2025, arXiv 2509.22611): the group's K-quantile replaces GRPO's mean as
    the baseline (the inverse-CDF quantile, a reward the group holds):

        A_i = (r_i - q_K(r)) / (std_group r + eps)    (scale: none drops the division)

    With 0/1 rewards and success rate p: a hard group (p <= 1 - K) has baseline 0, so only its
    right responses move; an easy one (p > 1 - K) baseline 1, so only its wrong ones do."""
    config = config or QuantileConfig()
    group = rewards.shape[-1]
    rank = min(group, max(1, math.ceil(round(config.quantile * group, 9)))) - 1
    baseline = rewards.sort(dim=-1).values[..., rank : rank + 1]
    centred = rewards - baseline
    if config.scale == "none" or group < 2:
        return centred
    return centred / (_group_std(rewards) + eps)


def compute_advantages(
    name: str, rewards: Tensor, eps: float = 1e-6,
    config: Mapping[str, Any] | AdvantageConfig | None = None, lengths: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:  # fmt: skip
    """Advantages of ``rewards`` ``[P, G]`` by the named estimator (``config``: its settings;
    ``lengths``: the responses' token counts ``[P, G]``, for the estimators that weigh tokens),
    exact zeros for groups whose rewards are all equal where the estimator is group-relative,
    and metrics ``zero_adv_group_frac`` and ``reward_std_mean``."""
    if rewards.dim() != 2:
        raise ValueError(
            f"rewards must be grouped as [n_prompts, G], got shape {tuple(rewards.shape)}"
        )
    spec = _spec(name)
    settings = make_advantage_config(name, config)
    advantages = spec.fn(rewards, eps, settings, lengths)
    flat = (rewards == rewards[..., :1]).all(dim=-1, keepdim=True)
    if spec.zero_flat:
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
