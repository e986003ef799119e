"""The policy-loss registry: an intervention is one function plus one name.

    @register_policy_loss("my_loss", MyConfig)
    def my_loss(logp, old_logp, advantages, mask, config, **extras):
        ...
        return loss, {"pg_clipfrac": ...}

Registration wraps the function so that every loss, built-in or yours, takes its config as a
dataclass, a mapping or ``None`` (defaults); adds the optional KL-to-reference term
(``config.kl_coef > 0``, needs ``extras["ref_logp"]``); and reports the same metrics:
``pg_clipfrac, approx_kl, cov_mean, cov_selected_frac, cov_selected_count, n_valid_tokens`` and
``entropy`` / ``kl_ref`` where given. The LM trainer, the tabular simulator and any engine
adapter look losses up here by name.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from entropy_rl.losses.common import aggregate, kl_estimate, masked_mean, token_covariance
from entropy_rl.losses.config import LossConfig

__all__ = [
    "PolicyLoss",
    "available_policy_losses",
    "get_policy_loss",
    "make_loss_config",
    "register_policy_loss",
]

LossFn = Callable[..., tuple[Tensor, dict[str, float]]]


@dataclass(frozen=True)
class PolicyLoss:
    """A registered loss: its name, the wrapped function, its config class, a one-line summary."""

    name: str
    fn: LossFn
    config_cls: type[LossConfig]
    summary: str

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[Tensor, dict[str, float]]:
        return self.fn(*args, **kwargs)


_REGISTRY: dict[str, PolicyLoss] = {}


def available_policy_losses() -> list[str]:
    """Registered loss names, sorted (for ``--help``, the config schema and error messages)."""
    return sorted(_REGISTRY)


def get_policy_loss(name: str) -> PolicyLoss:
    """The registered loss called ``name``; an unknown name lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown policy loss {name!r}; known losses: {', '.join(available_policy_losses())}"
        ) from None


def make_loss_config(name: str, values: LossConfig | Mapping[str, Any] | None = None) -> LossConfig:
    """The validated config of loss ``name`` from a mapping (e.g. YAML), a config or ``None``."""
    config_cls = get_policy_loss(name).config_cls
    if isinstance(values, LossConfig):
        if not isinstance(values, config_cls):
            raise TypeError(
                f"loss {name!r} takes a {config_cls.__name__}, got a {type(values).__name__}"
            )
        return values
    return config_cls.from_dict(dict(values or {}))


def _check_tokens(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor) -> None:
    if logp.dim() != 2:
        raise ValueError(f"logp must be a [batch, seq] token tensor, got shape {tuple(logp.shape)}")
    for name, tensor in (("old_logp", old_logp), ("advantages", advantages), ("mask", mask)):
        if tensor.shape != logp.shape:
            hint = " (broadcast per-sequence advantages with adv[:, None].expand_as(logp))"
            raise ValueError(
                f"{name} has shape {tuple(tensor.shape)} but logp has {tuple(logp.shape)}"
                + (hint if name == "advantages" else "")
            )


def register_policy_loss(
    name: str, config_cls: type[LossConfig] | None = None
) -> Callable[[LossFn], PolicyLoss]:
    """Register ``fn`` under ``name`` with its config class (a ``LossConfig`` subclass)."""
    if config_cls is None:
        config_cls = dataclasses.make_dataclass(
            f"{name.title().replace('_', '')}Config",
            [],
            bases=(LossConfig,),
            frozen=True,
            namespace={"section": name},
        )

    def decorator(fn: LossFn) -> PolicyLoss:
        if name in _REGISTRY:
            raise ValueError(f"a policy loss named {name!r} is already registered")

        @functools.wraps(fn)
        def loss_fn(
            logp: Tensor,
            old_logp: Tensor,
            advantages: Tensor,
            mask: Tensor,
            config: LossConfig | Mapping[str, Any] | None = None,
            **extras: Any,
        ) -> tuple[Tensor, dict[str, float]]:
            _check_tokens(logp, old_logp, advantages, mask)
            cfg = make_loss_config(name, config)
            cov = token_covariance(logp, advantages, mask)  # once, for the metrics and the loss
            loss, specific = fn(logp, old_logp, advantages, mask, cfg, **{"cov": cov, **extras})
            stats: dict[str, Tensor | float] = {
                "pg_clipfrac": 0.0,
                "cov_selected_frac": 0.0,
                "cov_selected_count": 0.0,
                "approx_kl": masked_mean(old_logp.detach() - logp.detach(), mask),
                "cov_mean": masked_mean(cov, mask),
                "n_valid_tokens": mask.sum(),
            }
            if extras.get("entropy") is not None:
                stats["entropy"] = masked_mean(extras["entropy"].detach(), mask)
            if cfg.kl_coef > 0:
                if extras.get("ref_logp") is None:
                    raise ValueError(
                        f"{name}.kl_coef = {cfg.kl_coef:g} needs extras['ref_logp'] (log-probs of "
                        "the reference policy); pass it or set kl_coef: 0"
                    )
                kl = aggregate(
                    kl_estimate(logp, extras["ref_logp"], cfg.kl_estimator), mask, cfg.loss_agg_mode
                )
                loss = loss + cfg.kl_coef * kl
                stats["kl_ref"] = kl.detach()
            stats.update(specific)
            metrics = {
                key: float(value.item()) if isinstance(value, Tensor) else float(value)
                for key, value in stats.items()
            }
            return loss, metrics

        summary = (fn.__doc__ or name).strip().splitlines()[0]
        spec = PolicyLoss(name=name, fn=loss_fn, config_cls=config_cls, summary=summary)
        _REGISTRY[name] = spec
        return spec

    return decorator
