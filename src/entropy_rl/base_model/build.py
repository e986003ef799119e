"""Make the toy base model end to end: tokenizer → tiny decoder → SFT → save → evaluate."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from entropy_rl.base_model.model import ModelSettings, build_model, count_parameters
from entropy_rl.base_model.sft import SFTSettings, run_sft
from entropy_rl.base_model.tokenizer import build_char_tokenizer
from entropy_rl.settings import Settings, choice, integer
from entropy_rl.tasks import ArithmeticTask

__all__ = ["BaseModelSettings", "build_base_model"]


@dataclass(frozen=True)
class BaseModelSettings(Settings):
    """The ``base_model:`` section: template, model shape, SFT, and the base model's evaluation."""

    section: ClassVar[str] = "base_model"

    source: str = choice(
        "sft", ("sft", "pretrained"), doc="sft: train the toy model; pretrained: use a saved one"
    )
    pretrained: str = (
        ""  # with source: pretrained, a hub id (e.g. Qwen/Qwen2.5-7B) or a local folder
    )
    template: str = "toy"
    # the base models of the study, by SFT seed (the pipeline trains one per seed; `sft --seed`
    # trains one): a random factor of every claim, like the RL seed
    seeds: list[int] = field(default_factory=lambda: [0])
    model: dict[str, Any] = field(default_factory=dict)
    sft: dict[str, Any] = field(default_factory=dict)
    eval_problems: int = integer(256, 1, doc="held-out problems for the base model's accuracy")
    eval_samples: int = integer(4, 1, doc="samples per problem at temperature 1")
    max_new_tokens: int = integer(48, 1, doc="longest response, in tokens")
    threads: int = integer(2, 1, doc="torch CPU threads for SFT")

    def check(self) -> None:
        self.model_settings()
        self.sft_settings()
        if self.source == "pretrained" and not self.pretrained:
            raise ValueError(
                "base_model.pretrained must name a hub id or a folder when base_model.source is pretrained"
            )

    def model_ref(self, built: str) -> str:
        """Where the base model is: the folder SFT wrote (``built``), or the pretrained reference."""
        return self.pretrained if self.source == "pretrained" else built

    def model_settings(self) -> ModelSettings:
        return ModelSettings.from_dict(self.model)

    def sft_settings(self) -> SFTSettings:
        return SFTSettings.from_dict(self.sft)


def build_base_model(
    task: ArithmeticTask,
    settings: BaseModelSettings,
    out: Path,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> tuple[list[dict[str, float]], dict[str, Any], list[dict[str, Any]]]:
    """Train and save the base model into ``out``; return SFT rows, a summary, per-sample rows."""
    from entropy_rl.evaluate import evaluate_problems  # with the sampler: not for the settings
    from entropy_rl.rollout import HFGenerator

    torch.set_num_threads(settings.threads)
    sft = settings.sft_settings()
    tokenizer = build_char_tokenizer()
    model = build_model(
        settings.model_settings(),
        len(tokenizer),
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
        sft.seed,
    )
    start = time.perf_counter()
    rows = run_sft(model, tokenizer, task, settings.template, sft, on_step=on_step)
    sft_seconds = time.perf_counter() - start
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)

    generator = HFGenerator(model, tokenizer)
    heldout = task.problems("heldout", settings.eval_problems, 0)
    ood = task.problems("ood", settings.eval_problems, 0)
    common = {
        "template": settings.template,
        "max_new_tokens": settings.max_new_tokens + 16,
        "seed": 0,
    }
    samples, sampled = evaluate_problems(
        generator, heldout, k=settings.eval_samples, temperature=1.0, **common
    )
    _, greedy = evaluate_problems(generator, heldout, k=1, temperature=0.0, **common)
    _, ood_sampled = evaluate_problems(generator, ood, k=1, temperature=1.0, **common)
    summary = {
        "parameters": count_parameters(model),
        "sft_seconds": sft_seconds,
        "sft_final_loss": rows[-1]["loss"],
        "heldout_pass@1_t1": sampled["pass@1"],
        f"heldout_pass@{settings.eval_samples}_t1": sampled[f"pass@{settings.eval_samples}"],
        "heldout_accuracy_greedy": greedy["pass@1"],
        "ood_pass@1_t1": ood_sampled["pass@1"],
    }
    return rows, summary, samples
