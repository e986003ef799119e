"""What ``torch.compile`` buys the update on this CPU: one mini-batch's forward, backward and AdamW
step on the embedded default's model, eager against compiled, side by side in one process.

    python benchmarks/compile_update.py                        # 32 x (14 + 48) tokens, 1 thread
    python benchmarks/compile_update.py --threads 2 --repeats 30 --json out.json

The step is the trainer's: ``policy_forward`` (log-probabilities and token entropies from the
model's logits) on a mini-batch of ``--rows`` sequences of a ``--prompt``-token prompt and up to
``--response`` response tokens (ragged), a token-mean loss on them, ``backward`` and AdamW. Both
models start from the same weights; the variants take turns, and each time is the median over
``--repeats`` steps after ``--warmup`` (the compiled model's first calls compile it; that time is
reported apart). The gradients of the two are checked to agree before timing.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time

import machine
import torch

from entropy_rl.base_model import ModelSettings, build_char_tokenizer, build_model
from entropy_rl.train.batch import TokenBatch, policy_forward


def mini_batch(rows: int, prompt: int, response: int, vocab: int, seed: int) -> TokenBatch:
    """Token tensors shaped like one of the trainer's mini-batches (ragged response lengths)."""
    g = torch.Generator().manual_seed(seed)
    width = prompt + response
    ids = torch.randint(3, vocab, (rows, width), generator=g)
    lengths = torch.randint(response // 2, response + 1, (rows,), generator=g)
    attention = (torch.arange(width)[None] < (prompt + lengths)[:, None]).long()
    response_mask = torch.zeros(rows, width - 1, dtype=torch.bool)
    for row, length in enumerate(lengths.tolist()):
        response_mask[row, prompt - 1 : prompt - 1 + length] = True
    advantages = torch.randn(rows, generator=g)[:, None] * response_mask
    return TokenBatch(ids * attention, attention, response_mask, advantages)


def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: TokenBatch) -> float:
    """One update on ``batch``: forward, a token-mean policy-gradient loss, backward, AdamW."""
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    logp, entropy = policy_forward(model, batch)
    mask = batch.response_mask
    loss = -(logp * batch.advantages)[mask].mean() - 0.0 * entropy[mask].mean()
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--prompt", type=int, default=14)
    parser.add_argument("--response", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tokenizer = build_char_tokenizer()
    eager = build_model(ModelSettings(), len(tokenizer), tokenizer.pad_token_id,
                        tokenizer.eos_token_id, seed=0)  # fmt: skip
    twin = copy.deepcopy(eager)
    batch = mini_batch(args.rows, args.prompt, args.response, len(tokenizer), seed=0)

    # the same gradients first (the compiled graph computes the same function)
    for model in (eager, twin):
        model.zero_grad(set_to_none=True)
    compiled = torch.compile(twin)
    for model in (eager, compiled):
        logp, _ = policy_forward(model, batch)
        (-(logp * batch.advantages)[batch.response_mask].mean()).backward()
    worst = max(
        float((a.grad - b.grad).abs().max())
        for a, b in zip(eager.parameters(), twin.parameters(), strict=True)
    )
    print(f"largest gradient difference, eager vs compiled: {worst:.1e}", file=sys.stderr)

    optimizers = {
        "eager": (eager, torch.optim.AdamW(eager.parameters(), lr=1e-4)),
        "compiled": (compiled, torch.optim.AdamW(twin.parameters(), lr=1e-4)),
    }
    start = time.perf_counter()
    for _ in range(args.warmup):
        for model, optimizer in optimizers.values():
            step(model, optimizer, batch)
    warmup_s = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in optimizers}
    for _ in range(args.repeats):
        for name, (model, optimizer) in optimizers.items():
            times[name].append(step(model, optimizer, batch))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["eager"] / medians["compiled"]
    print(f"\nUpdate of one mini-batch ({args.rows} x ({args.prompt} + <= {args.response}) "
          f"tokens), {machine.header()}\n")  # fmt: skip
    print("| variant | seconds (median) |\n| --- | ---: |")
    for name, value in medians.items():
        print(f"| {name} | {value:.4f} |")
    print(f"\neager / compiled = {ratio:.2f}x; warm-up (both, compiling included) {warmup_s:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine.describe(), "args": vars(args), "seconds": medians,
                       "samples": times, "ratio": ratio, "warmup_s": warmup_s,
                       "gradient_difference": worst}, f, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
