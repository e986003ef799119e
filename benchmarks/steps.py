"""Timing one RL step of this suite's trainer, piece by piece (shared by the benchmark scripts).

The pieces are timed by wrapping the functions every trainer calls: ``GenerationMixin.generate``
(rollouts), the log-probability forward passes, ``Tensor.backward`` and ``AdamW.step``; the rest
(rewards, advantages, the loss, bookkeeping) is the remainder of the step's wall time.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections import defaultdict
from pathlib import Path

import torch

PIECES = ("generation", "logprob forward", "backward", "optimizer")


def matmul_rate(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """The machine's float32 matmul rate (FLOP/s): the best of ``repeats`` n x n x n products
    with ``threads`` torch threads, measured in the same process as the trainers."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def forward_flops(config, tokens: float) -> float:
    """Model FLOPs of one forward pass over one sequence of ``tokens`` tokens: 2 per weight of
    every matmul (attention projections, MLP, output head) per token, plus the attention scores
    and their weighted sum (``4 · layers · width`` per pair of positions, ``tokens² / 2`` causal
    pairs). Embedding look-ups, norms and softmaxes are not counted. A backward pass is twice this."""
    h, layers = config.hidden_size, config.num_hidden_layers
    kv = h * config.num_key_value_heads // config.num_attention_heads
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * config.intermediate_size  # q, o; k, v; MLP
    matmul_weights = layers * per_layer + h * config.vocab_size
    return 2 * matmul_weights * tokens + 4 * layers * h * tokens**2 / 2


def step_flops(model: Path, prompt_tokens: float, response_tokens: float, sequences: int) -> float:
    """The model FLOPs an RL step needs: generating each sequence (one forward's worth, with a KV
    cache) and one forward and backward pass over it in the update (three forwards' worth); an
    old-log-probability pass is not needed and not counted."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model)
    return sequences * 4 * forward_flops(config, prompt_tokens + response_tokens)


def mean_prompt_tokens(model: Path, seed: int, n: int = 256) -> float:
    """Mean prompt length (tokens) of the toy task's training prompts, as both trainers see them."""
    from transformers import AutoTokenizer

    from entropy_rl.data import render_prompt
    from entropy_rl.tasks import ArithmeticTask

    tokenizer = AutoTokenizer.from_pretrained(model)
    prompts = [render_prompt("toy", p.problem) for p in ArithmeticTask().problems("train", n, seed)]
    return sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts) / n


class Timers:
    """Wall time spent inside a few functions, by piece; patch with ``timed`` and read ``seconds``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._depth: dict[str, int] = defaultdict(int)
        self._patches: list[tuple[object, str, object]] = []

    def timed(self, owner: object, name: str, piece: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            self._depth[piece] += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._depth[piece] -= 1
                if self._depth[piece] == 0:  # count nested calls once
                    self.seconds[piece] += time.perf_counter() - start

        self._patches.append((owner, name, original))
        setattr(owner, name, wrapper)

    def reset(self) -> None:
        self.seconds.clear()

    def restore(self) -> None:
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        self._patches.clear()


@contextlib.contextmanager
def shared_timers(extra: list[tuple[object, str, str]]):
    from transformers import GenerationMixin

    timers = Timers()
    timers.timed(GenerationMixin, "generate", "generation")
    timers.timed(torch.Tensor, "backward", "backward")
    timers.timed(torch.optim.AdamW, "step", "optimizer")
    for owner, name, piece in extra:
        timers.timed(owner, name, piece)
    try:
        yield timers
    finally:
        timers.restore()


def make_model(folder: Path, seed: int) -> Path:
    """A randomly initialised model of the default toy architecture, with the char tokenizer."""
    from entropy_rl.base_model import ModelSettings, build_char_tokenizer, build_model

    tokenizer = build_char_tokenizer()
    model = build_model(
        ModelSettings(), len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, seed
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_ours(args, model: Path, out: Path) -> dict:
    """Our trainer for ``args.steps`` + 1 steps (the first a warm-up) with ``args``' shape."""
    from entropy_rl.rollout.lean import LeanGenerator
    from entropy_rl.tasks import ArithmeticTask
    from entropy_rl.train import RLSettings, batch, train

    rollout = getattr(args, "rollout", "hf")
    settings = RLSettings(
        model=str(model), steps=args.steps + 1, prompts_per_step=args.prompts,
        group_size=args.group, mini_batches=args.mini_batches, lr=args.lr,
        max_new_tokens=args.max_new_tokens, checkpoint_every=10**6, lemma_check_every=0,
        eval_every=0, threads=args.threads, seed=args.seed, loss="grpo", rollout=rollout,
    )  # fmt: skip
    marks: list[tuple[float, dict]] = []
    # the lean sampler's decoding loop stands where transformers' generate would
    extra = [(batch, "policy_forward", "logprob forward"), (LeanGenerator, "_sample", "generation")]
    with shared_timers(extra) as timers:

        def on_step(row: dict) -> None:
            marks.append((time.perf_counter(), dict(timers.seconds)))
            if len(marks) == 1:
                timers.reset()  # the warm-up step ends here
                marks[0] = (marks[0][0], {})

        train(settings, out, ArithmeticTask(), on_step=on_step)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    tokens = [row["response_length"] * args.prompts * args.group for row in rows[1:]]
    return summarize_steps(marks, tokens)


def summarize_steps(marks: list[tuple[float, dict]], tokens: list[float]) -> dict:
    """Per-step seconds (warm-up excluded), the pieces' seconds per step, rollout tokens/s."""
    steps = len(marks) - 1
    total = (marks[-1][0] - marks[0][0]) / steps
    pieces = {piece: marks[-1][1].get(piece, 0.0) / steps for piece in PIECES}
    pieces["rest"] = total - sum(pieces.values())
    generated = sum(tokens[:steps])
    return {
        "step_s": total,
        "pieces_s": pieces,
        "rollout_tokens_per_step": generated / steps,
        "rollout_tokens_per_s": generated / (pieces["generation"] * steps),
    }
