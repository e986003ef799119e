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

A loss that trains only some tokens, chosen by a statistic of the whole batch (Clip-Cov, KL-Cov,
forking tokens), registers its choice as a ``selector``: a function of the same inputs that returns
the chosen tokens. The loss itself receives them as ``extras["selected"]``. Called alone, the
registry runs the selector on the loss's own tokens; a trainer whose mini-batch is split into
micro-batches or across processes runs it once on the whole mini-batch
(:func:`select_tokens`) and hands each part its share, so the tokens chosen do not depend on how
the batch is split.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from entropy_rl.losses.common import (
    aggregate,
    horizon,
    kl_estimate,
    masked_mean,
    token_covariance,
)
from entropy_rl.losses.config import LossConfig

__all__ = [
    "Controller",
    "PolicyLoss",
    "Resampler",
    "available_policy_losses",
    "get_policy_loss",
    "make_loss_config",
    "register_policy_loss",
    "select_tokens",
]

LossFn = Callable[..., tuple[Tensor, dict[str, float]]]
# (logp, old_logp, advantages, mask, config, *, entropy, generator, cov) -> bool [batch, seq]
Selector = Callable[..., Tensor]
State = dict[str, float]


@dataclass(frozen=True)
class Controller:
    """A loss's state across steps as pure functions of an explicit, JSON-able state (optax style).

    ``init(config) -> state`` at step 0; ``loss_kwargs(config, state)`` is what the loss takes from
    the state each step (e.g. ``{"coef": 0.01}``); ``update(config, state, row) -> (state,
    metrics)`` after each step, ``row`` being the step's metrics row and ``metrics`` what the
    controller adds to it. The trainers call, log and checkpoint it without knowing which loss it
    belongs to."""

    init: Callable[[LossConfig], State]
    update: Callable[[LossConfig, State, Mapping[str, Any]], tuple[State, dict[str, Any]]]
    loss_kwargs: Callable[[LossConfig, State], dict[str, Any]]


@dataclass(frozen=True)
class Resampler:
    """A loss that trains on extra responses drawn at another temperature (AEPO), as pure
    functions of its config and its controller's state: ``prompt_fraction(config)`` (the share
    of the step's prompts drawn again), ``temperature(config, state)`` (of that draw) and
    ``choose(config, state, advantages)`` (the indices of the drawn responses that replace the
    step's first ones, with advantage 1; ``advantages``: theirs within their groups). The shared
    step (:func:`entropy_rl.step.resample`) draws and merges."""

    prompt_fraction: Callable[[LossConfig], float]
    temperature: Callable[[LossConfig, State], float]
    choose: Callable[[LossConfig, State, Tensor], Tensor]


@dataclass(frozen=True)
class PolicyLoss:
    """A registered loss: its name, the wrapped function, its config class, a one-line summary,
    the selector of the tokens it trains, for a loss that chooses them by a batch statistic, and
    whether it needs old log-probabilities recomputed exactly (``exact_old_logp``: a loss whose
    gradient is large at any nonzero ``logp - old_logp``, so that the sampler's float rounding
    would move the policy), the :class:`Controller` of a loss with state across steps, and
    whether it reads the whole distribution (``needs_logits``: the trainers pass the tempered
    logits ``[batch, seq, vocab]`` as ``extras["logits"]``), and the :class:`Resampler` of a loss
    that trains on responses drawn at another temperature."""

    name: str
    fn: LossFn
    config_cls: type[LossConfig]
    summary: str
    selector: Selector | None = None
    exact_old_logp: bool = False
    controller: Controller | None = None
    needs_logits: bool = False
    resampler: Resampler | None = None

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
    except (KeyError, TypeError):  # TypeError: a list or mapping where a name belongs
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


def select_tokens(
    name: str,
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    config: LossConfig | Mapping[str, Any] | None = None,
    *,
    entropy: Tensor | None = None,
    generator: Any = None,
) -> Tensor | None:
    """The tokens loss ``name`` trains (or penalises, or detaches), chosen over exactly the tokens
    given; ``None`` for a loss that trains every token."""
    spec = get_policy_loss(name)
    if spec.selector is None:
        return None
    cfg = make_loss_config(name, config)
    cov = token_covariance(logp, advantages, mask)
    return spec.selector(logp.detach(), old_logp, advantages, mask, cfg,
                         entropy=entropy, generator=generator, cov=cov)  # fmt: skip


def _with_reference_kl(
    name: str, cfg: LossConfig, loss: Tensor, logp: Tensor, old_logp: Tensor, mask: Tensor,
    cov: Tensor, specific: Mapping[str, Any], extras: Mapping[str, Any],
) -> tuple[Tensor, dict[str, float]]:  # fmt: skip
    """A registered loss's total (its own plus ``kl_coef`` times the KL to the reference policy)
    and the metrics every loss reports, then its own (``specific``), as floats."""
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
            kl_estimate(logp, extras["ref_logp"], cfg.kl_estimator),
            mask,
            cfg.loss_agg_mode,
            horizon(cfg),
        )
        loss = loss + cfg.kl_coef * kl
        stats["kl_ref"] = kl.detach()
    stats.update(specific)
    metrics = {
        key: float(value.item()) if isinstance(value, Tensor) else float(value)
        for key, value in stats.items()
    }
    return loss, metrics


def register_policy_loss(
    name: str,
    config_cls: type[LossConfig] | None = None,
    selector: Selector | None = None,
    exact_old_logp: bool = False,
    controller: Controller | None = None,
    needs_logits: bool = False,
    resampler: Resampler | None = None,
) -> Callable[[LossFn], PolicyLoss]:
    """Register ``fn`` under ``name`` with its config class (a ``LossConfig`` subclass), for a
    loss that trains a chosen subset of tokens the ``selector`` that chooses them, and for a loss
    with state across steps its ``controller``."""
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
            if selector is not None and extras.get("selected") is None:
                extras = {**extras, "selected": selector(
                    logp.detach(), old_logp, advantages, mask, cfg, entropy=extras.get("entropy"),
                    generator=extras.get("generator"), cov=cov)}  # fmt: skip
            loss, specific = fn(logp, old_logp, advantages, mask, cfg, **{"cov": cov, **extras})
            return _with_reference_kl(name, cfg, loss, logp, old_logp, mask, cov, specific, extras)

        summary = " ".join((fn.__doc__ or name).strip().split("\n\n")[0].split())
        spec = PolicyLoss(name=name, fn=loss_fn, config_cls=config_cls, summary=summary,
                          selector=selector, exact_old_logp=exact_old_logp,
                          controller=controller, needs_logits=needs_logits,
                          resampler=resampler)  # fmt: skip
        _REGISTRY[name] = spec
        return spec

    return decorator
