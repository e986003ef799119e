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
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from entropy_rl.advantages import compute_advantages, dynamic_sampling, get_advantage_estimator
from entropy_rl.losses import get_policy_loss, make_controller, make_loss_config
from entropy_rl.metrics import token_entropy
from entropy_rl.settings import Settings, choice, integer, number
from entropy_rl.tabular.world import ChainWorld, Rollouts
from entropy_rl.theory import entropy as state_entropy
from entropy_rl.theory import exact_entropy_change, lemma1_entropy_change, state_weighted_mean
from entropy_rl.tracking import check_loggers

__all__ = ["TabularConfig", "run_tabular"]

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TabularConfig(Settings):
    """World, training and method of one tabular run (every field validated)."""

    section: ClassVar[str] = "tabular"

    # world
    n_prompts: int = integer(64, 1, doc="prompts (independent questions)")
    n_actions: int = integer(16, 2, doc="tokens to choose from at each position")
    length: int = integer(2, 1, doc="tokens per response (1: a bandit)")
    base_scale: float = number(1.5, 0.0, doc="spread of the base model's logits")
    base_correct_bias: float = number(1.5, doc="base model's pull towards a correct last token")
    # training
    steps: int = integer(300, 1, doc="RL steps")
    prompts_per_step: int = integer(16, 1, doc="prompts per step")
    group_size: int = integer(8, 1, doc="responses per prompt (G)")
    mini_batches: int = integer(4, 1, doc="optimizer steps per batch (off-policy after the first)")
    epochs: int = integer(1, 1, doc="passes over the batch")
    optimizer: str = choice(
        "sgd", OPTIMIZERS, doc="sgd: a sampled policy-gradient step, as in Theorem 1"
    )
    lr: float = number(5.0, 0.0, low_open=True, doc="learning rate")
    advantage: str = "grpo"
    dynamic_sampling: bool = choice(
        False, (True, False), doc="DAPO: drop groups whose rewards are all equal, sample more"
    )
    sampling_rounds: int = integer(4, 1, 5, doc="dynamic sampling: at most this many rounds")
    # method
    loss: str = "grpo"
    loss_config: dict[str, Any] = field(default_factory=dict)
    seed: int = integer(0, 0, doc="random seed")
    loggers: list[str] = field(default_factory=lambda: ["jsonl"])  # + tensorboard, mlflow

    def check(self) -> None:
        check_loggers(self.loggers, self.section)
        if self.prompts_per_step > self.n_prompts:
            raise ValueError(
                f"tabular.prompts_per_step ({self.prompts_per_step}) must be <= tabular.n_prompts ({self.n_prompts})"
            )
        if self.prompts_per_step * self.group_size % self.mini_batches:
            raise ValueError(
                f"tabular.mini_batches ({self.mini_batches}) must divide prompts_per_step × group_size "
                f"({self.prompts_per_step * self.group_size})"
            )
        get_advantage_estimator(self.advantage)
        make_loss_config(self.loss, self.loss_config)  # unknown loss or bad value: fail now

    def world(self) -> ChainWorld:
        # the world (targets, base model) depends on the seed too: seeds are independent replicates
        return ChainWorld(
            self.n_prompts, self.n_actions, self.length, self.base_scale, self.base_correct_bias,
            seed=10_000 + self.seed,
        )  # fmt: skip


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
    controller = make_controller(loss_cfg)  # entropy_target only

    rows = []
    for step in range(config.steps):
        start = time.perf_counter()
        z_before = logits.detach().numpy().copy()
        visitation = world.token_distribution(z_before)

        def draw(round_: int) -> Rollouts:  # fresh prompts each round (round 0: the step's batch)
            prompts = torch.randperm(config.n_prompts, generator=generator)
            return world.sample(
                logits.detach(), prompts[: config.prompts_per_step], config.group_size, generator
            )

        if config.dynamic_sampling:  # DAPO: keep informative groups, sample more until full
            batch, rounds = dynamic_sampling(
                draw, config.prompts_per_step, config.group_size, config.sampling_rounds
            )
        else:
            batch = draw(0)
        advantages, adv_metrics = compute_advantages(
            config.advantage, batch.rewards.view(-1, config.group_size)
        )
        if config.dynamic_sampling:
            adv_metrics["sampling_rounds"] = rounds
            adv_metrics["sampled_groups"] = len(batch.rewards) // config.group_size
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
                    coef=controller.coef if controller else None,
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
        if controller is not None:  # the coefficient of the next step
            row["entropy_target"] = controller.config.target
            row["entropy_coef_next"] = controller.update(row["entropy"])
        rows.append(row)
        if on_step is not None:
            on_step(row)
    return rows
