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

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from entropy_rl.losses import get_policy_loss, make_loss_config
from entropy_rl.metrics import token_entropy
from entropy_rl.rows import Rows
from entropy_rl.settings import choice, integer, number
from entropy_rl.step import (
    StepSettings,
    Update,
    controller_kwargs,
    controller_metrics,
    controller_start,
    draw_groups,
    ppo_update,
    resample,
    reward_kl_advantages,
)
from entropy_rl.tabular.world import ChainWorld, Rollouts
from entropy_rl.theory import entropy as state_entropy
from entropy_rl.theory import (
    exact_entropy_change,
    kl_divergence,
    lemma1_entropy_change,
    state_weighted_mean,
)

__all__ = ["TabularConfig", "run_tabular"]

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TabularConfig(StepSettings):
    """World, training and method of one tabular run (every field validated; the step's shared
    fields and checks are :class:`entropy_rl.step.StepSettings`')."""

    section: ClassVar[str] = "tabular"

    # world
    n_prompts: int = integer(64, 1, doc="prompts (independent questions)")
    n_actions: int = integer(16, 2, doc="tokens to choose from at each position")
    length: int = integer(2, 1, doc="tokens per response (1: a bandit)")
    base_scale: float = number(1.5, 0.0, doc="spread of the base model's logits")
    base_correct_bias: float = number(1.5, doc="base model's pull towards a correct last token")
    # training
    steps: int = integer(300, 1, doc="RL steps")
    optimizer: str = choice(
        "sgd", OPTIMIZERS, doc="sgd: a sampled policy-gradient step, as in Theorem 1"
    )
    lr: float = number(5.0, 0.0, low_open=True, doc="learning rate")
    sampling_rounds: int = integer(4, 1, 5, doc="dynamic sampling: at most this many rounds")

    def check(self) -> None:
        super().check()
        if self.prompts_per_step > self.n_prompts:
            raise ValueError(
                f"tabular.prompts_per_step ({self.prompts_per_step}) must be <= tabular.n_prompts ({self.n_prompts})"
            )

    def world(self) -> ChainWorld:
        # the world (targets, base model) depends on the seed too: seeds are independent replicates
        return ChainWorld(
            self.n_prompts, self.n_actions, self.length, self.base_scale, self.base_correct_bias,
            seed=10_000 + self.seed,
        )  # fmt: skip


@dataclass(frozen=True)
class TableBatch(Rows):
    """A step's responses as the update sees them: ``states``/``actions`` ``[B, T]``, each
    response's advantage on its ``T`` tokens, every token a response token."""

    states: torch.Tensor
    actions: torch.Tensor
    advantages: torch.Tensor
    response_mask: torch.Tensor

    def __len__(self) -> int:
        return self.states.shape[0]


class TablePolicy(torch.nn.Module):
    """The tabular softmax policy ``softmax(z[s])`` as the shared RL step's :class:`Policy`."""

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(logits, dtype=torch.float64))

    def forward(self, batch: TableBatch) -> tuple[torch.Tensor, torch.Tensor]:
        table = self.logits[batch.states]
        logp = torch.log_softmax(table, -1).gather(-1, batch.actions[..., None]).squeeze(-1)
        return logp, token_entropy(table)

    def forward_with_logits(
        self, batch: TableBatch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logp, entropy = self.forward(batch)
        return logp, entropy, self.logits[batch.states]

    def parts(self, batch: TableBatch) -> list[torch.Tensor]:
        return [torch.arange(len(batch))]  # a table's mini-batch is one pass


def run_tabular(
    config: TabularConfig, on_step: Callable[[dict[str, float]], None] | None = None
) -> list[dict[str, float]]:
    """Train ``config.steps`` steps; return (and pass to ``on_step``) one metrics row per step."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    world = config.world()
    policy = TablePolicy(world.base_logits)
    opt_cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD
    optimizer = opt_cls(policy.parameters(), lr=config.lr)
    loss = get_policy_loss(config.loss)
    plan = Update(loss, make_loss_config(config.loss, config.loss_config), config.epochs,
                  config.mini_batches, batch_selection=False)  # fmt: skip
    control = controller_start(loss, plan.loss_config)
    # the frozen reference of a KL term (in the loss or the reward): the base model's table
    reference = (
        TablePolicy(world.base_logits).requires_grad_(False) if config.uses_reference() else None
    )

    def draw(round_: int) -> Rollouts:  # fresh prompts each round (round 0: the step's batch)
        prompts = torch.randperm(config.n_prompts, generator=generator)
        return world.sample(
            policy.logits.detach(), prompts[: config.prompts_per_step], config.group_size, generator
        )

    def draw_at(temperature: float, prompts: int) -> Rollouts:  # fresh prompts, tempered policy
        chosen = torch.randperm(config.n_prompts, generator=generator)[:prompts]
        tempered = policy.logits.detach() / temperature
        return world.sample(tempered, chosen, config.group_size, generator)

    rows = []
    for step in range(config.steps):
        start = time.perf_counter()
        z_before = policy.logits.detach().numpy().copy()
        rollouts, advantages, adv_metrics = draw_groups(draw, config, config.sampling_rounds)
        rollouts, advantages, more = resample(
            loss, plan.loss_config, control, draw_at, rollouts, advantages, config
        )  # a resampling loss's extra draw (AEPO)
        adv_metrics.update(more)
        batch = TableBatch(
            rollouts.states, rollouts.actions,
            advantages.view(-1, 1).expand_as(rollouts.actions).contiguous(),
            torch.ones_like(rollouts.actions, dtype=torch.bool),
        )  # fmt: skip
        with torch.no_grad():
            old_logp, _ = policy(batch)
            ref_logp = None if reference is None else reference(batch)[0]
        if ref_logp is not None and config.reward_kl_coef > 0:  # rewards less the KL penalty
            advantages, more = reward_kl_advantages(
                config, rollouts.rewards, old_logp, ref_logp, batch.response_mask
            )
            adv_metrics.update(more)
            token_advantages = advantages.view(-1, 1).expand_as(rollouts.actions).contiguous()
            batch = dataclasses.replace(batch, advantages=token_advantages)
        rollout_s = time.perf_counter() - start
        start = time.perf_counter()
        update, _ = ppo_update(
            policy, batch, old_logp, optimizer, plan, step, shuffle=generator, pick=generator,
            loss_kwargs=controller_kwargs(loss, plan.loss_config, control), ref_logp=ref_logp,
        )  # fmt: skip
        update_s = time.perf_counter() - start
        row = _row(config, world, step, z_before, policy.logits.detach().numpy() - z_before,
                   rollouts, update, adv_metrics, rollout_s, update_s)  # fmt: skip
        if reference is not None:  # the exact KL to the reference, as the entropy above
            row["kl_base"] = state_weighted_mean(
                kl_divergence(z_before, world.base_logits), world.token_distribution(z_before)
            )
        control, more = controller_metrics(loss, plan.loss_config, control, row)
        row.update(more)  # the coefficient of the next step
        rows.append(row)
        if on_step is not None:
            on_step(row)
    return rows


def _row(
    config: TabularConfig, world: ChainWorld, step: int, z_before: np.ndarray, delta: np.ndarray,
    rollouts: Rollouts, update: dict[str, float], adv_metrics: dict[str, float],
    rollout_s: float, update_s: float,
) -> dict[str, float]:  # fmt: skip
    """The step's metrics row: the policy's exact entropy and accuracy before the update, the
    loss's metrics, and the exact and predicted (Lemma 1) entropy change of the update, weighted
    by how often a response token is emitted in each state."""
    visitation = world.token_distribution(z_before)
    return {
        "step": step,
        "entropy": state_weighted_mean(state_entropy(z_before), visitation),
        "reward_mean": float(rollouts.rewards.mean()),
        "accuracy": world.accuracy(z_before),
        "response_length": float(config.length),
        "entropy_batch": update.pop("entropy"),  # mean over the sampled tokens
        **update,
        "entropy_change": state_weighted_mean(exact_entropy_change(z_before, delta), visitation),
        "entropy_change_predicted": state_weighted_mean(
            lemma1_entropy_change(z_before, delta), visitation
        ),
        "lr": config.lr,
        "time_rollout_s": rollout_s,
        "time_update_s": update_s,
        "tokens_per_s": rollouts.actions.numel() * config.epochs / max(rollout_s + update_s, 1e-9),
        **adv_metrics,
    }
