"""Objectives that train on extra responses drawn at another temperature: AEPO.

AEPO (Wang et al., 2025, arXiv 2510.08141) replaces the entropy bonus by REINFORCE on responses
sampled from a temperature-adjusted policy: hotter (``temperature_high``) while the entropy is at
or under a target, colder (``temperature_low``) above it. Each step the trainer draws G responses
to a share of the step's prompts at that temperature, keeps those whose group advantage is above
``threshold``, and puts up to ``samples`` of them (half as many above the target) in place of the
step's first responses, with advantage 1; the update is GRPO's on the mixed batch. Its authors'
code is EasyR1's ``ray_trainer.py`` (``algorithm == "AEPO"``); this module holds its rule as pure
functions, and the shared step (:func:`entropy_rl.step.resample`) draws and merges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from entropy_rl.losses.common import ppo_loss
from entropy_rl.losses.config import LossConfig
from entropy_rl.losses.registry import Controller, Resampler, register_policy_loss
from entropy_rl.settings import integer, number

__all__ = ["AEPO", "AEPOConfig", "aepo_choice", "aepo_loss", "aepo_temperature"]


@dataclass(frozen=True)
class AEPOConfig(LossConfig):
    """AEPO's entropy target, its two temperatures, how many responses it replaces, from what
    share of the step's prompts, and the advantage a response needs (the authors' defaults)."""

    section: ClassVar[str] = "aepo"

    entropy_base: float = number(0.5, 0.0, doc="the entropy target H (nats per token)")
    temperature_high: float = number(
        1.2, 0.0, low_open=True, doc="temperature of the extra draw while entropy <= H"
    )
    temperature_low: float = number(
        0.8, 0.0, low_open=True, doc="temperature of the extra draw while entropy > H"
    )
    samples: int = integer(60, 0, doc="most responses replaced (half as many above H)")
    prompt_fraction: float = number(
        0.25, 0.0, 1.0, low_open=True, doc="share of the step's prompts drawn again"
    )
    threshold: float = number(
        0.05, doc="a re-drawn response is kept when its group advantage is above this"
    )


def aepo_temperature(config: AEPOConfig, entropy: float) -> float:
    """The extra draw's temperature: ``temperature_high`` while ``entropy <= entropy_base``,
    else ``temperature_low`` (the authors' rule; their first step sees entropy 0)."""
    return config.temperature_high if entropy <= config.entropy_base else config.temperature_low


def aepo_choice(config: AEPOConfig, entropy: float, advantages: Tensor) -> Tensor:
    """Indices of the re-drawn responses that replace the step's first ones: those with advantage
    above ``threshold``, in order, at most ``samples`` (``samples // 2`` above the target; the
    authors halve the count kept)."""
    kept = (advantages > config.threshold).nonzero().flatten()
    count = min(config.samples, len(kept))
    if entropy > config.entropy_base:
        count //= 2
    return kept[:count]


def _update(
    config: AEPOConfig, state: dict[str, float], row: Mapping[str, Any]
) -> tuple[dict[str, float], dict[str, Any]]:
    entropy = float(row["entropy"])
    if not math.isfinite(entropy):
        raise ValueError(f"controller inputs must be finite, got entropy={entropy}")
    return {"entropy": entropy}, {"aepo_temperature_next": aepo_temperature(config, entropy)}


AEPO = Resampler(
    prompt_fraction=lambda config: config.prompt_fraction,
    temperature=lambda config, state: aepo_temperature(config, state["entropy"]),
    choose=lambda config, state, advantages: aepo_choice(config, state["entropy"], advantages),
)


@register_policy_loss(
    "aepo", AEPOConfig, exact_old_logp=True, resampler=AEPO,
    controller=Controller(init=lambda config: {"entropy": 0.0}, update=_update,
                          loss_kwargs=lambda config, state: {}),
)  # fmt: skip
def aepo_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, config: AEPOConfig,
    **extras: Any,
) -> tuple[Tensor, dict]:  # fmt: skip
    """AEPO (Wang et al., 2025, arXiv 2510.08141): GRPO's loss on a batch whose first responses
    are re-drawn at a temperature set by the entropy, kept when better than their group, with
    advantage 1 (REINFORCE toward the tempered policy's good answers):

        T_t = T_high if H_{t-1} <= H else T_low;   y ~ pi^{1/T_t},   A(y) = 1 if A_group(y) > threshold

    A hotter policy's good answers carry more entropy than the policy's own, a colder one's
    less, so the term pulls the entropy toward the target from either side, with a reward the
    verifier checked instead of a bonus that rewards any spread. The old log-probabilities of
    the re-drawn responses are the policy's own (recomputed), not the tempered sampler's."""
    return ppo_loss(logp, old_logp, advantages, mask, config)
