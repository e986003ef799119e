"""Configuration of the policy losses: validated settings, one dataclass per loss.

Every bad value fails at construction with the key, the allowed range and the value, e.g.
``clip_cov.r must be in (0, 1], got 0.0`` (see :mod:`entropy_rl.settings`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from entropy_rl.settings import Settings, choice, number

__all__ = [
    "AGGREGATIONS",
    "ClipCovConfig",
    "ClipHigherConfig",
    "DrGRPOConfig",
    "EntropyAdvantageConfig",
    "EntropyBonusConfig",
    "EntropyTargetConfig",
    "ForkingTokensConfig",
    "GRPOConfig",
    "KLCovConfig",
    "LossConfig",
    "PosNegWeightConfig",
]

AGGREGATIONS = (
    "token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum-norm",
)
KL_ESTIMATORS = ("k1", "k2", "k3", "low_var_kl")
COUNT_ROUNDINGS = ("reference", "ceil", "floor")


@dataclass(frozen=True)
class LossConfig(Settings):
    """Settings every policy loss shares: the PPO clip range and dual-clip, loss aggregation, KL to
    a reference."""

    section: ClassVar[str] = "grpo"

    clip_ratio_low: float = number(0.2, 0.0, 1.0, doc="PPO clip: ratio >= 1 - clip_ratio_low")
    clip_ratio_high: float = number(0.2, 0.0, doc="PPO clip: ratio <= 1 + clip_ratio_high")
    clip_ratio_c: float = number(
        math.inf, 1.0, low_open=True,
        doc="dual-clip: a token with A < 0 loses at most -A·clip_ratio_c (verl 3, the recipe 10; inf: off)",
    )  # fmt: skip
    loss_agg_mode: str = choice("token-mean", AGGREGATIONS, doc="how token losses become one loss")
    loss_scale_factor: float = number(
        0.0, 0.0,
        doc="T of seq-mean-token-sum-norm, sum / (B·T); 0: the maximum response length (trainer)",
    )  # fmt: skip
    kl_coef: float = number(0.0, 0.0, doc="weight of the KL-to-reference term (0: off)")
    kl_estimator: str = choice(
        "k3", KL_ESTIMATORS,
        doc="Schulman's KL estimator (k1, k2, k3; low_var_kl: k3 clamped as verl's)",
    )  # fmt: skip

    def aggregates_selected(self) -> bool:
        """Whether the loss's mean runs over its selected tokens only (not every valid one): a
        trainer splitting the batch then weighs each part by its share of the selected tokens."""
        return False


@dataclass(frozen=True)
class GRPOConfig(LossConfig):
    """GRPO: the PPO clipped surrogate, ``eps_low = eps_high = 0.2``."""


@dataclass(frozen=True)
class ClipHigherConfig(LossConfig):
    """Clip-higher (DAPO): a wider upper clip, ``eps_high = 0.28``."""

    section: ClassVar[str] = "clip_higher"
    clip_ratio_high: float = number(0.28, 0.0, doc="PPO clip: ratio <= 1 + clip_ratio_high")


@dataclass(frozen=True)
class EntropyBonusConfig(LossConfig):
    """GRPO plus ``-coef · mean token entropy``."""

    section: ClassVar[str] = "entropy_bonus"
    coef: float = number(1e-3, 0.0, doc="entropy coefficient (the paper sweeps 1e-4 ... 1e-2)")


@dataclass(frozen=True)
class ClipCovConfig(LossConfig):
    """Clip-Cov: stop the gradient of ``ceil``-ish ``r·N`` random tokens with covariance in band.

    Defaults follow the authors' scripts: ``r = 2e-4``, band ``(1, 5)`` taken strictly, PPO clip
    ratios set to 1 (so PPO clipping rarely acts), tokens PPO already clipped are skipped.
    """

    section: ClassVar[str] = "clip_cov"
    clip_ratio_low: float = number(1.0, 0.0, 1.0, doc="PPO clip (the authors' scripts: 1)")
    clip_ratio_high: float = number(1.0, 0.0, doc="PPO clip (the authors' scripts: 1)")
    r: float = number(2e-4, 0.0, 1.0, low_open=True, doc="fraction of valid tokens to clip")
    omega_low: float = number(1.0, doc="lower edge of the covariance band")
    omega_high: float = number(5.0, doc="upper edge of the covariance band")
    band: str = choice("strict", ("strict", "inclusive"), doc="strict: lo < cov < hi (reference)")
    count_rounding: str = choice(
        "reference", COUNT_ROUNDINGS, doc="reference: max(1, floor(r·N)); ceil; floor"
    )
    skip_ppo_clipped: bool = choice(True, (True, False), doc="never pick tokens PPO clipped")

    def check(self) -> None:
        if self.omega_low > self.omega_high:
            raise ValueError(
                f"clip_cov.omega_low ({self.omega_low:g}) must be <= clip_cov.omega_high "
                f"({self.omega_high:g})"
            )


@dataclass(frozen=True)
class KLCovConfig(LossConfig):
    """KL-Cov: the top ``k·N`` tokens by covariance get ``beta · |logp - old_logp|``.

    Defaults follow the authors' code: unclipped ``-A·ratio`` (no PPO clip), ``max(1, floor(k·N))``
    tokens, ``k = 2e-3`` (their scripts write it as a percentage, ``k_percent = 0.2``), ``beta = 1``.
    """

    section: ClassVar[str] = "kl_cov"
    k: float = number(2e-3, 0.0, 1.0, low_open=True, doc="fraction of valid tokens penalised")
    beta: float = number(1.0, 0.0, doc="weight of |logp - old_logp| on the selected tokens")
    count_rounding: str = choice(
        "reference", COUNT_ROUNDINGS, doc="reference: max(1, floor(k·N)); ceil; floor"
    )
    ppo_clip: bool = choice(False, (True, False), doc="clip the surrogate like PPO (reference: no)")


# -- beyond the paper (losses/interventions.py) -----------------------------------------------


@dataclass(frozen=True)
class DrGRPOConfig(LossConfig):
    """Dr. GRPO: token losses summed and divided by a constant, batch size x maximum response length."""

    section: ClassVar[str] = "dr_grpo"
    loss_agg_mode: str = choice(
        "seq-mean-token-sum-norm",
        AGGREGATIONS,
        doc="Dr. GRPO: sum / (B · T), T = loss_scale_factor",
    )


@dataclass(frozen=True)
class ForkingTokensConfig(LossConfig):
    """High-entropy "forking" tokens only: the policy gradient of the top ``top_fraction`` by entropy."""

    section: ClassVar[str] = "forking_tokens"
    top_fraction: float = number(
        0.2,
        0.0,
        1.0,
        low_open=True,
        doc="fraction of valid tokens, by entropy, that get a gradient",
    )
    normalizer: str = choice(
        "selected", ("selected", "all"),
        doc="the mean over the selected tokens (the authors' code) or over all valid ones (TRL)",
    )  # fmt: skip

    def aggregates_selected(self) -> bool:
        return self.normalizer == "selected"


@dataclass(frozen=True)
class EntropyAdvantageConfig(LossConfig):
    """Entropy-based advantage shaping: ``A + min(alpha · H, |A| / kappa)``, H detached."""

    section: ClassVar[str] = "entropy_advantage"
    alpha: float = number(0.4, 0.0, doc="weight of the token entropy in the advantage")
    kappa: float = number(2.0, 0.0, low_open=True, doc="the entropy term is at most |A| / kappa")


@dataclass(frozen=True)
class PosNegWeightConfig(LossConfig):
    """Positive / negative sample reweighting: ``A · w_pos`` where ``A > 0``, ``A · w_neg`` otherwise."""

    section: ClassVar[str] = "pos_neg_weight"
    positive_weight: float = number(0.1, 0.0, doc="scale of positive advantages (W-REINFORCE: 0.1)")
    negative_weight: float = number(1.0, 0.0, doc="scale of negative advantages")


@dataclass(frozen=True)
class EntropyTargetConfig(LossConfig):
    """An entropy bonus whose coefficient a PI controller adapts each step to hold ``target`` nats.

    ``e = (target - H) / target``;  ``I <- clamp(I + ki · e, 0, coef_max)``;
    ``coef = clamp(I + kp · e, 0, coef_max)`` (see ``losses/interventions.py``).
    """

    section: ClassVar[str] = "entropy_target"
    target: float = number(0.5, 0.0, low_open=True, doc="entropy to hold (nats per token)")
    kp: float = number(2.0, 0.0, doc="proportional gain: coefficient per unit relative error")
    ki: float = number(0.2, 0.0, doc="integral gain: coefficient added per step per unit error")
    coef_init: float = number(0.0, 0.0, doc="the coefficient (and the integral) at step 0")
    coef_max: float = number(1.0, 0.0, low_open=True, doc="largest coefficient")

    def check(self) -> None:
        if self.coef_init > self.coef_max:
            raise ValueError(
                f"entropy_target.coef_init ({self.coef_init:g}) must be <= entropy_target.coef_max "
                f"({self.coef_max:g})"
            )


@dataclass(frozen=True)
class AdaptiveEntropyConfig(LossConfig):
    """Skywork-OR1's adaptive entropy control: an entropy bonus that acts only while the entropy
    is under ``target``, its coefficient moved by ``delta`` a step, up while under, down while over.

    The defaults are the authors' scripts' for 7B and 32B models (target 0.2, coefficient in
    ``[0, 0.005]``, steps of 1e-4); see ``losses/interventions.py``.
    """

    section: ClassVar[str] = "adaptive_entropy"
    target: float = number(
        0.2, 0.0, low_open=True, doc="entropy below which the bonus acts (nats per token)"
    )
    coef_init: float = number(0.0, 0.0, doc="the coefficient at step 0")
    coef_min: float = number(0.0, 0.0, doc="smallest coefficient")
    coef_max: float = number(0.005, 0.0, low_open=True, doc="largest coefficient")
    delta: float = number(1e-4, 0.0, low_open=True, doc="change of the coefficient per step")

    def check(self) -> None:
        if not self.coef_min <= self.coef_init <= self.coef_max:
            raise ValueError(
                f"adaptive_entropy needs coef_min <= coef_init <= coef_max, got {self.coef_min:g}, "
                f"{self.coef_init:g}, {self.coef_max:g}"
            )
