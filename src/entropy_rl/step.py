"""One RL step, shared by the language-model trainer and the tabular simulator.

    groups, advantages ← draw G graded responses per prompt (DAPO: keep informative groups and
                         draw more); the registered estimator gives each response its advantage
    update             ← for each epoch, for each mini-batch: the registered loss on the policy's
                         log-probabilities and entropies, gradients clipped and checked, one
                         optimizer step
    controller         ← a loss's state across steps (the entropy-target coefficient), updated
                         from the step's metrics row

What differs between the trainers is behind a small :class:`Policy` interface: the log-
probabilities and entropies of a batch's tokens, and how a mini-batch splits into the forward
passes one process runs (micro-batches). Drawing responses, the old log-probabilities, the
metrics row and checkpoints stay with each trainer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor

from entropy_rl.advantages import (
    compute_advantages,
    dynamic_sampling,
    kl_penalized_rewards,
    make_advantage_config,
)
from entropy_rl.losses import LossConfig, PolicyLoss, make_loss_config, select_tokens
from entropy_rl.losses.common import aggregation_share, masked_mean, token_covariance
from entropy_rl.losses.config import KL_ESTIMATORS
from entropy_rl.ranks import SINGLE, World
from entropy_rl.settings import Settings, choice, integer, number
from entropy_rl.tracking import check_loggers

__all__ = [
    "COUNT_METRICS",
    "NonFiniteError",
    "Policy",
    "StepSettings",
    "Update",
    "controller_metrics",
    "controller_start",
    "draw_groups",
    "ppo_update",
    "resample",
    "reward_kl_advantages",
    "select_over_mini_batch",
]

# loss metrics that count tokens: summed over micro-batches (the others are weighted means)
COUNT_METRICS = frozenset({"n_valid_tokens", "cov_selected_count", "cov_band_count"})


@dataclass(frozen=True)
class StepSettings(Settings):
    """What a run of either trainer sets for its steps: the batch (``prompts_per_step`` prompts ×
    ``group_size`` responses), the update's shape, the advantage estimator, DAPO's dynamic
    sampling, the method's loss, the seed and the trackers; checked once, here. Each trainer's
    settings class adds its own fields (and its own defaults)."""

    steps: int = integer(200, 1, doc="RL steps (one rollout batch each)")
    prompts_per_step: int = integer(16, 1, doc="prompts per rollout batch")
    group_size: int = integer(8, 2, doc="responses per prompt, G (GRPO compares within a group)")
    mini_batches: int = integer(
        4, 1, doc="optimizer steps per rollout batch (KL-Cov acts from the 2nd)"
    )
    epochs: int = integer(1, 1, doc="passes over the rollout batch")
    advantage: str = "grpo"
    advantage_config: dict[str, Any] = field(default_factory=dict)
    dynamic_sampling: bool = choice(
        False, (True, False), doc="DAPO: drop groups whose rewards are all equal, sample more"
    )
    loss: str = "grpo"
    loss_config: dict[str, Any] = field(default_factory=dict)
    reward_kl_coef: float = number(
        0.0,
        0.0,
        doc="KL to the reference (the base model) as a reward penalty: r - coef·sum_t kl_t",
    )
    reward_kl_estimator: str = choice(
        "k1", KL_ESTIMATORS, doc="the reward penalty's KL estimator (verl's kl_penalty: k1)"
    )
    seed: int = integer(0, 0, doc="random seed")
    loggers: list[str] = field(default_factory=lambda: ["jsonl"])  # + tensorboard, mlflow

    def check(self) -> None:
        check_loggers(self.loggers, self.section)
        if self.prompts_per_step * self.group_size % self.mini_batches:
            raise ValueError(
                f"{self.section}.mini_batches ({self.mini_batches}) must divide prompts_per_step "
                f"× group_size ({self.prompts_per_step * self.group_size})"
            )
        make_advantage_config(self.advantage, self.advantage_config).check_group(self.group_size)
        make_loss_config(self.loss, self.loss_config)  # unknown loss or bad value: fail now

    def uses_reference(self) -> bool:
        """Whether the run needs the frozen reference policy (the base model): a KL to it in the
        loss (``loss_config.kl_coef``) or in the reward (``reward_kl_coef``)."""
        loss = make_loss_config(self.loss, self.loss_config)
        return self.reward_kl_coef > 0 or loss.kl_coef > 0


class NonFiniteError(FloatingPointError):
    """A NaN or inf in the rollout logits, the loss or the gradients; the message names the step
    and the tensor."""


class Batch(Protocol):
    """Responses as token tensors: ``response_mask`` and ``advantages`` ``[rows, seq]``."""

    response_mask: Tensor
    advantages: Tensor

    def __len__(self) -> int: ...

    def take(self, index: Tensor) -> Batch: ...


class Policy(Protocol):
    """What the update needs of a policy: the log-probabilities of a batch's tokens and the
    entropies of the distributions they come from (both ``[rows, seq]``, with gradients; with
    the logits ``[rows, seq, vocab]`` too, for a loss that reads the whole distribution), the
    row indices of the forward passes a mini-batch is split into, and its parameters."""

    def forward(self, batch: Any) -> tuple[Tensor, Tensor]: ...

    def forward_with_logits(self, batch: Any) -> tuple[Tensor, Tensor, Tensor]: ...

    def parts(self, batch: Any) -> list[Tensor]: ...

    def named_parameters(self) -> Iterator[tuple[str, torch.nn.Parameter]]: ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...


G = TypeVar("G")


def draw_groups(
    draw: Callable[[int], G], settings: StepSettings, rounds: int = 1,
    lengths: Callable[[G], Tensor] | None = None,
) -> tuple[G, Tensor, dict[str, float]]:  # fmt: skip
    """A step's graded responses, their advantages and the estimator's metrics.

    ``draw(round)`` samples ``settings.prompts_per_step`` prompts, ``group_size`` responses each,
    graded (a batch of rows with a ``rewards`` column). With ``settings.dynamic_sampling``
    (DAPO), groups whose rewards are all equal are dropped and more drawn, up to ``rounds``
    draws. The advantages are the settings' estimator's over each group of ``rewards``,
    flattened to one per response; ``lengths(batch)`` gives the responses' token counts to the
    estimators that weigh tokens (``None``: all count alike)."""
    group_size = settings.group_size
    if settings.dynamic_sampling:
        kept, drawn = dynamic_sampling(draw, settings.prompts_per_step, group_size, rounds)
    else:
        kept = draw(0)
    rewards: Tensor = kept.rewards  # type: ignore[attr-defined]
    counts = None if lengths is None else lengths(kept).view(-1, group_size)
    advantages, metrics = compute_advantages(
        settings.advantage, rewards.view(-1, group_size), config=settings.advantage_config,
        lengths=counts,
    )  # fmt: skip
    if settings.dynamic_sampling:
        metrics["sampling_rounds"] = drawn
        metrics["sampled_groups"] = len(rewards) // group_size
    return kept, advantages.flatten(), metrics


def resample(
    loss: PolicyLoss, config: LossConfig, state: dict[str, float] | None,
    draw_at: Callable[[float, int], G], kept: G, advantages: Tensor, settings: StepSettings,
) -> tuple[G, Tensor, dict[str, float]]:  # fmt: skip
    """A resampling loss's extra draw (AEPO), merged into the step's batch: ``draw_at(T, n)``
    samples G graded responses to ``n`` prompts at temperature ``T`` (``n``: the loss's share of
    the step's prompts, at least 1); the estimator's advantages within their groups choose the
    ones kept (:class:`entropy_rl.losses.registry.Resampler`), which take the place of the
    step's first responses with advantage 1. Returns the batch, its advantages and the draw's
    metrics; a loss without a resampler leaves the batch as it is."""
    spec = loss.resampler
    if spec is None or state is None:
        return kept, advantages, {}
    temperature = spec.temperature(config, state)
    prompts = max(1, int(settings.prompts_per_step * spec.prompt_fraction(config)))
    extra = draw_at(temperature, prompts)
    rewards: Tensor = extra.rewards  # type: ignore[attr-defined]
    extra_advantages, _ = compute_advantages(
        settings.advantage, rewards.view(-1, settings.group_size), config=settings.advantage_config
    )
    chosen = spec.choose(config, state, extra_advantages.flatten())
    count = len(chosen)
    rest = torch.arange(count, len(advantages))
    merged = extra.take(chosen).join(kept.take(rest))  # type: ignore[attr-defined]
    ones = torch.ones(count, dtype=advantages.dtype, device=advantages.device)
    metrics = {"resample_temperature": temperature, "resampled": float(count),
               "resample_reward_mean": float(rewards.float().mean())}  # fmt: skip
    return merged, torch.cat([ones, advantages[count:]]), metrics


def reward_kl_advantages(
    settings: StepSettings, rewards: Tensor, logp: Tensor, ref_logp: Tensor, mask: Tensor
) -> tuple[Tensor, dict[str, float]]:
    """The advantages of the step's rewards less the reference KL penalty
    (:func:`entropy_rl.advantages.kl_penalized_rewards`, ``settings.reward_kl_coef``), by the
    registered estimator over each group, one per response; ``reward_kl`` (the mean per-token
    KL of the responses) joins the estimator's metrics, which describe the penalised rewards."""
    penalised, kl = kl_penalized_rewards(
        rewards, logp, ref_logp, mask, settings.reward_kl_coef, settings.reward_kl_estimator
    )
    advantages, metrics = compute_advantages(
        settings.advantage, penalised.view(-1, settings.group_size),
        config=settings.advantage_config, lengths=mask.sum(-1).view(-1, settings.group_size),
    )  # fmt: skip
    metrics["reward_kl"] = float(kl.mean())
    return advantages.flatten(), metrics


@dataclass(frozen=True)
class Update:
    """How a step updates the policy: ``epochs`` passes over ``mini_batches`` mini-batches of the
    step's responses, each an optimizer step on ``loss``. ``grad_clip``: the largest total
    gradient norm (``inf``: no clipping). ``batch_selection``: a selecting loss (Clip-Cov,
    KL-Cov, forking tokens) chooses its tokens over the whole mini-batch of every rank, however
    it is split into forward passes."""

    loss: PolicyLoss
    loss_config: LossConfig
    epochs: int
    mini_batches: int
    grad_clip: float = math.inf
    batch_selection: bool = True


def ppo_update(
    policy: Policy, batch: Batch, old_logp: Tensor, optimizer: torch.optim.Optimizer,
    plan: Update, step: int, shuffle: torch.Generator, pick: torch.Generator,
    loss_kwargs: dict[str, Any] | None = None, old_entropy: Tensor | None = None,
    on_policy_first: bool = False, world: World = SINGLE, ref_logp: Tensor | None = None,
) -> tuple[dict[str, float], tuple[float, float] | None]:  # fmt: skip
    """The step's PPO epochs over mini-batches; returns the loss metrics averaged over updates.

    Each mini-batch (``torch.randperm`` by ``shuffle``, per epoch) runs the policy's forward
    passes (``policy.parts``) and backpropagates each part's loss weighted by its share of the
    mini-batch's aggregate, so the gradient is the whole mini-batch's; ``pick`` draws the
    loss's random choices. Token metrics are token-weighted means over the parts (counts add
    up); ``cov_mean`` is taken over the whole mini-batch. A non-finite loss or gradient raises
    :class:`NonFiniteError` naming the step and the tensor.

    ``on_policy_first``: ``old_logp`` came from the sampler, and the first update's forward pass
    is the very policy that sampled, so its log-probabilities replace ``old_logp`` (in place)
    for the rest of the step; the second value returned is then ``(sum, count)`` of
    ``|pass - sampler|`` over the response tokens (else ``None``). ``old_entropy``: the sampling
    policy's entropies, which spare the token selection a forward pass before the first update.
    """
    loss_kwargs = loss_kwargs or {}
    selecting = plan.batch_selection and plan.loss.selector is not None
    sums: dict[str, float] = {}
    updates = 0
    gap = [0.0, 0.0] if on_policy_first else None
    for _ in range(plan.epochs):
        for index in torch.randperm(len(batch), generator=shuffle).chunk(plan.mini_batches):
            mini = batch.take(index)
            first = on_policy_first and updates == 0
            optimizer.zero_grad(set_to_none=True)
            parts = policy.parts(mini)
            selected = None  # the tokens a selecting loss trains, chosen over the mini-batch
            if selecting and (len(parts) > 1 or world.active):
                # before the step's first update the policy is the one whose log-probabilities
                # and entropies the rollout pass (or the sampler) already gave
                known = (
                    (old_logp[index], old_entropy[index])
                    if updates == 0 and old_entropy is not None
                    else None
                )
                selected = select_over_mini_batch(
                    policy, mini, parts, old_logp[index], plan, pick, world,
                    on_policy=first, known=known,
                )  # fmt: skip
            metrics, part_logps, part_losses, diff = _backward_parts(
                policy, mini, index, parts, old_logp, selected, plan, pick, loss_kwargs, first,
                ref=None if ref_logp is None else ref_logp[index],
            )  # fmt: skip
            if gap is not None:
                gap = [gap[0] + diff[0], gap[1] + diff[1]]
            if len(parts) > 1:  # a batch statistic: over the whole mini-batch, as without parts
                cov = token_covariance(torch.cat(part_logps), mini.advantages, mini.response_mask)
                metrics["cov_mean"] = float(masked_mean(cov, mini.response_mask))
            metrics["grad_norm"] = _clipped_step(policy, optimizer, plan, step, part_losses, world)
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
            updates += 1
    averaged = {key: value / updates for key, value in sums.items()}
    return averaged, None if gap is None else (gap[0], gap[1])


def _backward_parts(
    policy: Policy, mini: Batch, index: Tensor, parts: list[Tensor], old_logp: Tensor,
    selected: Tensor | None, plan: Update, pick: torch.Generator, loss_kwargs: dict[str, Any],
    first: bool, ref: Tensor | None = None,
) -> tuple[dict[str, float], list[Tensor], list[Tensor], tuple[float, float]]:  # fmt: skip
    """Backpropagate a mini-batch's loss part by part, each weighted by its share of the
    mini-batch's aggregate (``ref``: the mini-batch's reference log-probabilities, for a KL
    term). Returns the token-weighted loss metrics (counts summed), each part's
    log-probabilities and loss, and ``(sum, count)`` of ``|pass - old|`` on the first update."""
    config, metrics = plan.loss_config, {}
    part_logps, part_losses, gap = [], [], (0.0, 0.0)
    for part in parts:
        micro = mini.take(part)
        whole: dict[str, Tensor] = {}  # the distribution, for a loss that reads it
        if plan.loss.needs_logits:
            logp, entropy, whole["logits"] = policy.forward_with_logits(micro)
        else:
            logp, entropy = policy.forward(micro)
        if first:
            # the first update is on-policy: this pass is the policy that sampled, so its
            # log-probabilities are the old ones exactly (ratio 1, KL-Cov's |logp - old_logp| 0
            # with no gradient) and replace the sampler's (~1e-5 away: float rounding), which
            # the other mini-batches keep
            diff = (logp.detach() - old_logp[index][part]).abs()[micro.response_mask]
            gap = (gap[0] + float(diff.sum()), gap[1] + diff.numel())
            old_logp[index[part]] = logp.detach()
        loss, part_metrics = plan.loss(
            logp, old_logp[index][part], micro.advantages, micro.response_mask, config,
            entropy=entropy, generator=pick,
            selected=None if selected is None else selected[part],
            ref_logp=None if ref is None else ref[part], **whole, **loss_kwargs,
        )  # fmt: skip
        part_logps.append(logp.detach())
        scope = (micro.response_mask, mini.response_mask)  # what the loss's mean is over
        if selected is not None and config.aggregates_selected():
            scope = (selected[part], selected)
        (loss * aggregation_share(*scope, config.loss_agg_mode)).backward()
        part_losses.append(loss.detach())
        # the metrics are means over valid tokens; counts add up
        tokens = aggregation_share(micro.response_mask, mini.response_mask, "token-mean")
        for key, value in part_metrics.items():
            weight = 1.0 if key in COUNT_METRICS else tokens
            metrics[key] = metrics.get(key, 0.0) + weight * value
    return metrics, part_logps, part_losses, gap


def _clipped_step(
    policy: Policy, optimizer: torch.optim.Optimizer, plan: Update, step: int,
    losses: list[Tensor], world: World,
) -> float:  # fmt: skip
    """Check, clip and apply the mini-batch's gradients; return their total norm before clipping."""
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    grad_norm = torch.nn.utils.get_total_norm(grads)  # the norm clip_grad_norm_ takes
    total = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
    check_finite(step, losses, total, policy, world)  # FSDP: a DTensor, whole
    torch.nn.utils.clip_grads_with_norm_(policy.parameters(), plan.grad_clip, grad_norm)
    optimizer.step()
    return float(total)


def check_finite(
    step: int, losses: list[Tensor], grad_norm: Tensor, policy: Policy, world: World = SINGLE
) -> None:
    """Stop on a NaN/inf loss or gradient of a mini-batch; every rank stops when one finds one.

    The total gradient norm (which the clip needs anyway) is non-finite exactly when some gradient
    element is, so the walk over the parameters that names the tensor runs only then."""
    problem = None
    bad = [loss for loss in losses if not torch.isfinite(loss)] if losses else []
    if bad:
        problem = f"step {step}: the policy loss is {bad[0].item()} (non-finite); run stopped"
    elif not torch.isfinite(grad_norm):
        for name, param in policy.named_parameters():
            grad = param.grad
            grad = grad.to_local() if hasattr(grad, "to_local") else grad  # a rank's shard (FSDP)
            if grad is not None and not torch.isfinite(grad).all():
                problem = f"step {step}: the gradient of {name} has NaN/inf values; run stopped"
                break
        else:  # the non-finite shard is another rank's
            problem = f"step {step}: another process found a NaN/inf gradient; run stopped"
    if world.active and world.sum([float(problem is not None)])[0] and problem is None:
        problem = f"step {step}: another process found a NaN/inf loss or gradient; run stopped"
    if problem is not None:
        raise NonFiniteError(problem)


def select_over_mini_batch(
    policy: Policy, mini: Batch, parts: list[Tensor], old_logp: Tensor, plan: Update,
    pick: torch.Generator, world: World = SINGLE, on_policy: bool = False,
    known: tuple[Tensor, Tensor] | None = None,
) -> Tensor:  # fmt: skip
    """The tokens the loss selects (Clip-Cov, KL-Cov, forking tokens), chosen once over the whole
    mini-batch of every rank, as the paper defines them, not within each micro-batch or process.

    A no-grad pass over the same parts gives the policy's log-probabilities and entropies (the
    update's forward passes then give the same numbers: the same model on the same inputs);
    every rank gathers all ranks' valid tokens in rank order, runs the loss's selector on them
    with the same generator, and keeps its own share. Returns a bool ``[rows, seq]`` mask.

    ``known``: the policy's log-probabilities and entropies where they are known without a pass
    (before a step's first update: the rollout's no-grad pass, or the sampler's values, which
    agree with a pass to float rounding)."""
    if known is None:
        with torch.no_grad():
            passes = [policy.forward(mini.take(part)) for part in parts]
        logp = torch.cat([lp for lp, _ in passes])  # the parts split the rows in order
        entropy = torch.cat([h for _, h in passes])
    else:
        logp, entropy = known
    old = logp if on_policy else old_logp  # the first update's old log-probabilities are its own
    valid = mini.response_mask.to(torch.bool)
    local = [t[valid] for t in (logp, old, mini.advantages, entropy)]
    gathered = [world.gather_cat(t) for t in local]
    start = gathered[0][1]
    flat = [whole[None] for whole, _ in gathered]  # one row of all valid tokens
    chosen = select_tokens(
        plan.loss.name, flat[0], flat[1], flat[2], torch.ones_like(flat[0], dtype=torch.bool),
        plan.loss_config, entropy=flat[3], generator=pick,
    )[0]  # fmt: skip
    selected = torch.zeros_like(valid)
    selected[valid] = chosen[start : start + local[0].numel()]
    return selected


def controller_start(
    loss: PolicyLoss, config: LossConfig, saved: dict[str, float] | None = None
) -> dict[str, float] | None:
    """The state of ``loss``'s controller at the run's start (``saved``: a checkpoint's), or
    ``None`` for a loss without one."""
    if loss.controller is None:
        return None
    return dict(saved) if saved else loss.controller.init(config)


def controller_metrics(
    loss: PolicyLoss, config: LossConfig, state: dict[str, float] | None, row: dict[str, Any]
) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """The controller's next state after a step whose metrics are ``row``, and what it adds to
    the row (``{}`` and ``None`` without a controller)."""
    if loss.controller is None or state is None:
        return state, {}
    return loss.controller.update(config, state, row)


def controller_kwargs(
    loss: PolicyLoss, config: LossConfig, state: dict[str, float] | None
) -> dict[str, Any]:
    """What the controller's state passes to the loss (the entropy coefficient), ``{}`` without one."""
    if loss.controller is None or state is None:
        return {}
    return loss.controller.loss_kwargs(config, state)
