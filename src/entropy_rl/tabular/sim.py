"""The tabular simulator: RL on a logits table with the same losses, advantages and metrics as the LM.

One step, as in the language-model trainer:
prompts → G responses each → verifiable rewards → advantages (registered estimator) →
old log-probs → ``epochs`` passes over ``mini_batches`` mini-batches, each an optimizer step on the
registered policy loss (torch autograd on the logits table) → one metrics row.

Because the policy is a table, the entropy change of each step is measured exactly and compared
with Lemma 1's first-order prediction (both from :mod:`entropy_rl.theory`), weighted by how often
a response token is emitted in each state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from entropy_rl.advantages import compute_advantages, get_advantage_estimator
from entropy_rl.losses import get_policy_loss, make_loss_config
from entropy_rl.metrics import token_entropy
from entropy_rl.tabular.world import ChainWorld
from entropy_rl.theory import entropy as state_entropy
from entropy_rl.theory import exact_entropy_change, lemma1_entropy_change, state_weighted_mean

__all__ = ["TabularConfig", "run_tabular"]

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TabularConfig:
    """World, training and method of one tabular run (every field validated)."""

    # world
    n_prompts: int = 64
    n_actions: int = 16
    length: int = 2
    base_scale: float = 1.5
    base_correct_bias: float = 1.5
    # training
    steps: int = 300
    prompts_per_step: int = 16
    group_size: int = 8
    mini_batches: int = 4
    epochs: int = 1
    optimizer: str = (
        "sgd"  # plain SGD on the table: a sampled policy-gradient step, as in Theorem 1
    )
    lr: float = 5.0
    advantage: str = "grpo"
    # method
    loss: str = "grpo"
    loss_config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        positive = (
            "n_prompts",
            "length",
            "steps",
            "prompts_per_step",
            "group_size",
            "mini_batches",
            "epochs",
        )
        for key in positive:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"tabular.{key} must be an integer >= 1, got {value!r}")
        if not isinstance(self.n_actions, int) or self.n_actions < 2:
            raise ValueError(f"tabular.n_actions must be an integer >= 2, got {self.n_actions!r}")
        if self.prompts_per_step > self.n_prompts:
            raise ValueError(
                f"tabular.prompts_per_step ({self.prompts_per_step}) must be <= tabular.n_prompts ({self.n_prompts})"
            )
        if self.prompts_per_step * self.group_size % self.mini_batches:
            raise ValueError(
                f"tabular.mini_batches ({self.mini_batches}) must divide prompts_per_step × group_size "
                f"({self.prompts_per_step * self.group_size})"
            )
        if not self.lr > 0:
            raise ValueError(f"tabular.lr must be > 0, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"tabular.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        get_advantage_estimator(self.advantage)
        make_loss_config(self.loss, self.loss_config)  # unknown loss or bad value: fail now

    def world(self) -> ChainWorld:
        # the world (targets, base model) depends on the seed too: seeds are independent replicates
        return ChainWorld(
            self.n_prompts, self.n_actions, self.length, self.base_scale, self.base_correct_bias,
            seed=10_000 + self.seed,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mini_batches(n: int, count: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    yield from order.chunk(count)


def run_tabular(
    config: TabularConfig, on_step: Callable[[dict[str, float]], None] | None = None
) -> list[dict[str, float]]:
    """Train ``config.steps`` steps; return (and pass to ``on_step``) one metrics row per step."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    world = config.world()
    logits = torch.nn.Parameter(torch.tensor(world.base_logits, dtype=torch.float64))
    opt_cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD
    optimizer = opt_cls([logits], lr=config.lr)
    loss_fn = get_policy_loss(config.loss)
    loss_cfg = make_loss_config(config.loss, config.loss_config)

    rows = []
    for step in range(config.steps):
        start = time.perf_counter()
        z_before = logits.detach().numpy().copy()
        visitation = world.token_distribution(z_before)
        prompts = torch.randperm(config.n_prompts, generator=generator)[: config.prompts_per_step]
        batch = world.sample(logits.detach(), prompts, config.group_size, generator)
        advantages, adv_metrics = compute_advantages(
            config.advantage, batch.rewards.view(config.prompts_per_step, config.group_size)
        )
        token_adv = advantages.view(-1, 1).expand_as(batch.actions).contiguous()
        mask = torch.ones_like(batch.actions, dtype=torch.bool)
        with torch.no_grad():
            old_logp = (
                torch.log_softmax(logits[batch.states], -1)
                .gather(-1, batch.actions[..., None])
                .squeeze(-1)
            )
        rollout_s = time.perf_counter() - start

        start = time.perf_counter()
        sums: dict[str, float] = {}
        n_updates = 0
        for _ in range(config.epochs):
            for idx in _mini_batches(len(batch.rewards), config.mini_batches, generator):
                states, actions = batch.states[idx], batch.actions[idx]
                table = logits[states]
                logp = torch.log_softmax(table, -1).gather(-1, actions[..., None]).squeeze(-1)
                loss, metrics = loss_fn(
                    logp, old_logp[idx], token_adv[idx], mask[idx], loss_cfg,
                    entropy=token_entropy(table), generator=generator,
                )  # fmt: skip
                optimizer.zero_grad()
                loss.backward()
                metrics["grad_norm"] = float(logits.grad.norm())
                optimizer.step()
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value
                n_updates += 1
        update_s = time.perf_counter() - start

        delta = logits.detach().numpy() - z_before
        update_metrics = {key: value / n_updates for key, value in sums.items()}
        row = {
            "step": step,
            "entropy": state_weighted_mean(state_entropy(z_before), visitation),
            "reward_mean": float(batch.rewards.mean()),
            "accuracy": world.accuracy(z_before),
            "response_length": float(config.length),
            "entropy_batch": update_metrics.pop("entropy"),  # mean over the sampled tokens
            **update_metrics,
            "entropy_change": state_weighted_mean(
                exact_entropy_change(z_before, delta), visitation
            ),
            "entropy_change_predicted": state_weighted_mean(
                lemma1_entropy_change(z_before, delta), visitation
            ),
            "lr": config.lr,
            "time_rollout_s": rollout_s,
            "time_update_s": update_s,
            "tokens_per_s": batch.actions.numel() * config.epochs / max(rollout_s + update_s, 1e-9),
            **adv_metrics,
        }
        rows.append(row)
        if on_step is not None:
            on_step(row)
    return rows
