"""Settings of an RL run (the ``train:`` section of the pipeline config) and of its method."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from entropy_rl.data import render_prompt
from entropy_rl.losses import LossConfig, get_policy_loss, make_loss_config
from entropy_rl.settings import choice, integer, number
from entropy_rl.step import StepSettings

__all__ = ["RLSettings"]


@dataclass(frozen=True)
class RLSettings(StepSettings):
    """One RL run: the policy to start from, the batch and update shape, logging, and the method
    (the fields both trainers have, and their checks, are :class:`entropy_rl.step.StepSettings`')."""

    section: ClassVar[str] = "train"

    model: str = ""  # folder of a saved model (save_pretrained), e.g. results/embedded/base_model
    template: str = "toy"
    lr: float = number(
        1e-4, 0.0, low_open=True, doc="learning rate (AdamW; constant after warm-up)"
    )
    warmup_steps: int = integer(
        0, 0, doc="RL steps over which the learning rate rises linearly to lr (verl, TRL: warm-up)"
    )
    weight_decay: float = number(0.0, 0.0, doc="AdamW weight decay")
    grad_clip: float = number(1.0, 0.0, low_open=True, doc="gradient-norm clip")
    temperature: float = number(
        1.0,
        0.0,
        low_open=True,
        doc="rollout sampling temperature T; the trained policy is softmax(logits / T)",
    )
    top_p: float = number(1.0, 0.0, 1.0, low_open=True, doc="rollout nucleus sampling")
    max_new_tokens: int = integer(48, 1, doc="longest response, in tokens")
    sampling_rounds: int = integer(
        4, 1, 64, doc="dynamic sampling: at most this many rollout rounds (the recipe: 10)"
    )
    format_penalty: float = number(
        0.0, 0.0, doc="reward of a response without a boxed answer: -penalty"
    )
    train_problems: int = integer(
        20000, 1, doc="distinct train-split problems prompts are drawn from"
    )
    checkpoint_every: int = integer(50, 1, doc="steps between checkpoints (model, optimizer, step)")
    lemma_check_every: int = integer(
        10, 0, doc="steps between Lemma-1 checks on the probe batch (0: off)"
    )
    probe_size: int = integer(16, 1, doc="responses in the fixed Lemma-1 probe batch")
    eval_every: int = integer(20, 0, doc="steps between held-out evaluations (0: off)")
    eval_early_every: int = integer(
        0, 0, doc="steps between held-out evaluations up to eval_early_until (0: eval_every's)"
    )
    eval_early_until: int = integer(0, 0, doc="last step of the denser early evaluations")
    eval_problems: int = integer(128, 1, doc="held-out problems per evaluation")
    eval_k: int = integer(1, 1, doc="sampled responses per problem of a held-out evaluation")
    threads: int = integer(1, 1, doc="torch CPU threads")
    device: str = choice("auto", ("auto", "cpu", "cuda"), doc="auto: a GPU when there is one")
    precision: str = choice(
        "float32", ("float32", "bfloat16"), doc="bfloat16: mixed precision (GPU)"
    )
    rollout: str = choice(
        "hf",
        ("hf", "lean", "vllm"),
        doc="who samples: transformers generate, the suite's lean decoding loop (in-process "
        "models), or vLLM (GPU) synced each step",
    )
    vllm_gpu_memory: float = number(
        0.3, 0.0, 1.0, low_open=True, doc="vllm rollout: share of GPU memory vLLM may take"
    )
    old_logp: str = choice(
        "auto",
        ("auto", "sampler", "recompute"),
        doc="old log-probabilities: the hf sampler's (auto: at top-p 1 in float32) or a no-grad pass",
    )
    micro_batch_tokens: int = integer(
        0, 0, doc="split each mini-batch into parts of at most this many padded tokens (0: off)"
    )
    selection: str = choice(
        "batch", ("batch", "micro_batch"),
        doc="Clip-Cov / KL-Cov / forking tokens choose over the whole mini-batch of every process, "
        "or within each micro-batch and process (verl)",
    )  # fmt: skip
    gradient_checkpointing: bool = choice(
        False, (True, False), doc="recompute activations in the backward pass (less memory)"
    )
    compile: bool = choice(
        False, (True, False),
        doc="torch.compile the update's forward passes (one process; on a CPU it needs a C++ "
        "compiler; docs/benchmarks.md measures it)",
    )  # fmt: skip
    engine: str = choice(
        "entropy-rl", ("entropy-rl", "verl"), doc="who trains: this suite, or verl's PPO trainer"
    )
    gpus_per_node: int = integer(8, 1, doc="verl engine: GPUs per node")
    nodes: int = integer(1, 1, doc="verl engine: nodes")
    max_prompt_tokens: int = integer(
        1024, 1, doc="verl engine: the longest prompt, in tokens (data.max_prompt_length)"
    )
    rollout_tensor_parallel: int = integer(
        1, 1, doc="verl engine: GPUs each vLLM rollout engine spans (tensor parallel)"
    )

    def loss_settings(self) -> LossConfig:
        """The method's loss config; Dr. GRPO's constant ``T`` (``loss_scale_factor``, unless set)
        is the maximum response length, so the loss does not depend on the prompt's length or on
        the step's longest response."""
        values = dict(self.loss_config)
        values.setdefault("loss_scale_factor", float(self.max_new_tokens))
        return make_loss_config(self.loss, values)

    def lr_at(self, step: int) -> float:
        """The learning rate of RL step ``step`` (0-based): ``lr · min(1, (step + 1) / warmup)``."""
        return self.lr * min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else self.lr

    def check(self) -> None:
        super().check()
        if self.old_logp == "sampler" and (self.rollout != "hf" or self.top_p != 1.0):
            raise ValueError(
                "train.old_logp: sampler needs the hf rollout at top_p 1 (its log-probabilities "
                "are then the policy's); use auto or recompute"
            )
        if self.old_logp == "sampler" and get_policy_loss(self.loss).resampler is not None:
            raise ValueError(
                f"train.old_logp: sampler with loss {self.loss}: its extra responses are drawn at "
                "another temperature, so the sampler's log-probabilities are not the policy's; "
                "use auto or recompute"
            )
        render_prompt(self.template, "")

    def check_model(self) -> str:
        """The starting model: a saved model folder, or a hub id (``org/name``, loaded on use).

        A path that exists without ``config.json``, or a path-like name that does not exist, is an
        error before any work.
        """
        path = Path(self.model)
        is_hub_id = re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", self.model) and not path.exists()
        if not self.model or not (is_hub_id or (path / "config.json").is_file()):
            raise ValueError(
                f"train.model = {self.model!r} is not a saved model folder (no config.json there); "
                "build the base model first (`entropy-rl sft --out DIR`) and point train.model at DIR"
            )
        return self.model

    def old_logp_from_sampler(self) -> bool:
        """Whether the old log-probabilities (and the rollout entropy) are the sampler's: the hf
        sampler draws from softmax(z / T) of this very policy, so on the first update of a batch
        they are what a recomputing pass would give (up to float rounding, ~1e-5 here). Not with
        top-p < 1 (the sampler's distribution is then truncated), vLLM (another engine) or
        bfloat16 (the sampler's precision is not the update's), and not for a loss registered with
        ``exact_old_logp`` (KL-Cov: its penalty ``β·|log π − log π_old|`` has a gradient of size β
        at any nonzero gap, so the sampler's rounding, ~1e-5, would push the selected tokens where
        the policy has not moved)."""
        if self.old_logp != "auto":
            return self.old_logp == "sampler"
        exact = get_policy_loss(self.loss).exact_old_logp  # KL-Cov
        return (
            not exact
            and self.rollout in ("hf", "lean")
            and self.top_p == 1.0
            and self.precision == "float32"
        )

    def torch_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def autocast_dtype(self):
        import torch

        return torch.bfloat16 if self.precision == "bfloat16" else None
