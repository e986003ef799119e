"""Supervised fine-tuning that makes the toy *base model*: prompt masked, diverse demonstrations.

Each step draws fresh problems from the task's train split and a fresh demonstration for each
(see ``ArithmeticTask.demonstration``: varied orders, some with one plausible slip), and minimises the
cross-entropy of the response tokens only (prompt tokens get label -100): the model learns to
answer, not to write questions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from entropy_rl.data import render_prompt
from entropy_rl.settings import Settings, integer, number
from entropy_rl.tasks import ArithmeticTask, Problem

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["SFTSettings", "encode_example", "run_sft"]

IGNORE = -100


@dataclass(frozen=True)
class SFTSettings(Settings):
    """Supervised fine-tuning of the base model."""

    section: ClassVar[str] = "base_model.sft"

    steps: int = integer(1500, 1, doc="optimizer steps")
    batch_size: int = integer(64, 1, doc="examples per step")
    lr: float = number(1e-3, 0.0, low_open=True, doc="peak learning rate (AdamW)")
    warmup_steps: int = integer(100, 0, doc="linear warm-up steps, then cosine decay to 10%")
    weight_decay: float = number(0.01, 0.0, doc="AdamW weight decay")
    grad_clip: float = number(1.0, 0.0, low_open=True, doc="gradient-norm clip")
    train_problems: int = integer(20000, 1, doc="distinct train-split problems to draw from")
    seed: int = integer(0, 0, doc="random seed (weights, data)")


def encode_example(
    tokenizer: PreTrainedTokenizerBase, prompt: str, response: str
) -> tuple[list[int], list[int]]:
    """Token ids of ``prompt + response + EOS`` and labels with the prompt masked (-100)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [
        tokenizer.eos_token_id
    ]
    return prompt_ids + response_ids, [IGNORE] * len(prompt_ids) + response_ids


def _collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        attention[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def _lr_factor(step: int, settings: SFTSettings) -> float:
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def run_sft(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: ArithmeticTask,
    template: str,
    settings: SFTSettings,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place; return one ``{step, loss, lr}`` row per step."""
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    problems: list[Problem] = task.problems("train", settings.train_problems, settings.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, settings))
    model.train()
    rows = []
    for step in range(settings.steps):
        picks = rng.integers(len(problems), size=settings.batch_size)
        examples = [
            encode_example(
                tokenizer,
                render_prompt(template, problems[i].problem),
                task.demonstration(problems[i], rng),
            )
            for i in picks
        ]
        loss = model(**_collate(examples, tokenizer.pad_token_id)).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"SFT step {step}: loss is {loss.item()}; lower base_model.sft.lr"
            )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        schedule.step()
        row = {"step": step, "loss": float(loss.item()), "lr": schedule.get_last_lr()[0]}
        rows.append(row)
        if on_step is not None:
            on_step(row)
    model.eval()
    return rows
