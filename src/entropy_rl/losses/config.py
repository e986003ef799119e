"""Configuration of the policy losses: frozen dataclasses whose fields carry their allowed range.

Every bad value fails at construction with the key, the allowed range and the value, e.g.
``clip_cov.r must be in (0, 1], got 0.0``. The ranges live in each field's metadata, so the config
schema and the table-driven tests read them from one place.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "AGGREGATIONS",
    "ClipCovConfig",
    "ClipHigherConfig",
    "EntropyBonusConfig",
    "GRPOConfig",
    "KLCovConfig",
    "LossConfig",
    "allowed_range",
]

AGGREGATIONS = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean")
KL_ESTIMATORS = ("k1", "k2", "k3")
COUNT_ROUNDINGS = ("reference", "ceil", "floor")


def number(
    default: float,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    doc: str = "",
) -> Any:
    """A numeric field allowed in ``[low, high]`` (``(`` / ``)`` where open)."""
    bounds = {"low": low, "high": high, "low_open": low_open, "high_open": high_open}
    return field(default=default, metadata={"range": bounds, "doc": doc})


def choice(default: str | bool, options: tuple, doc: str = "") -> Any:
    """A field allowed to take one of ``options``."""
    return field(default=default, metadata={"choices": options, "doc": doc})


def allowed_range(f: dataclasses.Field) -> str:
    """The allowed values of a config field, as the error messages and docs print them."""
    if "choices" in f.metadata:
        return "one of " + ", ".join(repr(c) for c in f.metadata["choices"])
    r = f.metadata["range"]
    return f"{'(' if r['low_open'] else '['}{r['low']:g}, {r['high']:g}{')' if r['high_open'] else ']'}"


def _in_range(value: Any, f: dataclasses.Field) -> bool:
    if "choices" in f.metadata:
        return any(value == c and type(value) is type(c) for c in f.metadata["choices"])
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return False
    r = f.metadata["range"]
    above = value > r["low"] if r["low_open"] else value >= r["low"]
    below = value < r["high"] if r["high_open"] else value <= r["high"]
    return above and below


@dataclass(frozen=True)
class LossConfig:
    """Settings every policy loss shares: the PPO clip range, loss aggregation, KL to a reference."""

    loss_name: ClassVar[str] = "grpo"

    clip_ratio_low: float = number(0.2, 0.0, 1.0, doc="PPO clip: ratio >= 1 - clip_ratio_low")
    clip_ratio_high: float = number(0.2, 0.0, doc="PPO clip: ratio <= 1 + clip_ratio_high")
    loss_agg_mode: str = choice("token-mean", AGGREGATIONS, doc="how token losses become one loss")
    kl_coef: float = number(0.0, 0.0, doc="weight of the KL-to-reference term (0: off)")
    kl_estimator: str = choice("k3", KL_ESTIMATORS, doc="Schulman's KL estimator (k1, k2, k3)")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and "range" in f.metadata:
                object.__setattr__(self, f.name, float(value))  # YAML gives 1 for 1.0
                value = float(value)
            if not _in_range(value, f):
                allowed = allowed_range(f) if "choices" in f.metadata else f"in {allowed_range(f)}"
                raise ValueError(f"{self.loss_name}.{f.name} must be {allowed}, got {value!r}")
        self.check()

    def check(self) -> None:
        """Constraints between fields (subclasses extend)."""

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None = None) -> LossConfig:
        """Build from a (YAML) mapping; unknown keys are errors that list the known ones."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown key(s) {unknown} for loss '{cls.loss_name}'; known keys: {sorted(known)}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class GRPOConfig(LossConfig):
    """GRPO: the PPO clipped surrogate, ``eps_low = eps_high = 0.2``."""


@dataclass(frozen=True)
class ClipHigherConfig(LossConfig):
    """Clip-higher (DAPO): a wider upper clip, ``eps_high = 0.28``."""

    loss_name: ClassVar[str] = "clip_higher"
    clip_ratio_high: float = number(0.28, 0.0, doc="PPO clip: ratio <= 1 + clip_ratio_high")


@dataclass(frozen=True)
class EntropyBonusConfig(LossConfig):
    """GRPO plus ``-coef · mean token entropy``."""

    loss_name: ClassVar[str] = "entropy_bonus"
    coef: float = number(1e-3, 0.0, doc="entropy coefficient (the paper sweeps 1e-4 ... 1e-2)")


@dataclass(frozen=True)
class ClipCovConfig(LossConfig):
    """Clip-Cov: stop the gradient of ``ceil``-ish ``r·N`` random tokens with covariance in band.

    Defaults follow the authors' scripts: ``r = 2e-4``, band ``(1, 5)`` taken strictly, PPO clip
    ratios set to 1 (so PPO clipping rarely acts), tokens PPO already clipped are skipped.
    """

    loss_name: ClassVar[str] = "clip_cov"
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

    loss_name: ClassVar[str] = "kl_cov"
    k: float = number(2e-3, 0.0, 1.0, low_open=True, doc="fraction of valid tokens penalised")
    beta: float = number(1.0, 0.0, doc="weight of |logp - old_logp| on the selected tokens")
    count_rounding: str = choice(
        "reference", COUNT_ROUNDINGS, doc="reference: max(1, floor(k·N)); ceil; floor"
    )
    ppo_clip: bool = choice(False, (True, False), doc="clip the surrogate like PPO (reference: no)")
