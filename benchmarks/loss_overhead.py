"""Time of each registered policy loss (forward + backward) relative to GRPO, at N tokens.

    python benchmarks/loss_overhead.py                         # N = 1e4, 1e5, 1e6; every loss
    python benchmarks/loss_overhead.py --tokens 1000000 --losses grpo kl_cov --json out.json

The inputs are what the trainer hands a loss: ``[B, T]`` log-probabilities with gradient, old
log-probabilities, advantages constant along each sequence (8 responses per prompt), a response
mask with ragged lengths, (for the entropy bonus) the token entropy with gradient and (for the
losses that read the whole distribution: SIREN, Lp-Reg) ``[B, T, V]`` logits with gradient, V = 32
as the embedded model's vocabulary (their cost grows with V). Each loss is
called through the registry, so its shared metrics are timed too. The number is the median of
``--repeats`` timed calls after warm-up; the goal is <= 1.2x GRPO. The cost of computing the token
entropy from the logits is not included: the trainer computes it for every method (it is the
``entropy`` metric), see ``entropy_memory.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import machine
import torch

from entropy_rl.losses import available_policy_losses, get_policy_loss, make_loss_config

SEQ_LEN = 1000  # tokens per response; B = N / SEQ_LEN responses
VOCAB = 32  # the logits' width, for the losses that read them


def inputs(n_tokens: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = max(8, n_tokens // SEQ_LEN) // 8 * 8  # whole groups of 8
    length = n_tokens // batch
    old = -torch.rand(batch, length, generator=g) * 3
    logp = (old + 0.05 * torch.randn(batch, length, generator=g)).requires_grad_(True)
    rewards = (torch.rand(batch // 8, 8, generator=g) < 0.5).float()
    adv = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-6)
    lengths = torch.randint(length // 4, length + 1, (batch,), generator=g)
    mask = (torch.arange(length)[None] < lengths[:, None]).float()
    entropy = (torch.rand(batch, length, generator=g) * 2).requires_grad_(True)
    logits = torch.randn(batch, length, VOCAB, generator=g).requires_grad_(True)
    return {"logp": logp, "old_logp": old, "advantages": adv.reshape(-1, 1).expand(batch, length),
            "mask": mask, "entropy": entropy, "logits": logits}  # fmt: skip


def time_losses(
    names: list[str], tensors: dict[str, torch.Tensor], repeats: int
) -> dict[str, float]:
    """Median seconds of forward + backward per loss; the losses take turns, so drift hits all alike."""
    generator = torch.Generator().manual_seed(0)
    calls = {name: (get_policy_loss(name), make_loss_config(name)) for name in names}

    def once(name: str) -> float:
        loss_fn, config = calls[name]
        tensors["logp"].grad = tensors["entropy"].grad = tensors["logits"].grad = None
        whole = {"logits": tensors["logits"]} if loss_fn.needs_logits else {}
        start = time.perf_counter()
        loss, _ = loss_fn(
            tensors["logp"], tensors["old_logp"], tensors["advantages"], tensors["mask"], config,
            entropy=tensors["entropy"], generator=generator, **whole,
        )  # fmt: skip
        loss.backward()
        return time.perf_counter() - start

    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats + 3):  # 3 warm-up rounds
        for name in names:
            seconds = once(name)
            if round_ >= 3:
                samples[name].append(seconds)
    return {name: statistics.median(times) for name, times in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--losses", nargs="+", default=available_policy_losses())
    parser.add_argument("--repeats", type=int, default=51)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    losses = ["grpo", *[name for name in args.losses if name != "grpo"]]

    results: dict[int, dict[str, float]] = {}
    for n in args.tokens:
        tensors = inputs(n)
        results[n] = time_losses(losses, tensors, args.repeats)

    print(f"forward + backward of each loss, median of {args.repeats}, {args.threads} threads; "
          "milliseconds (x GRPO)")  # fmt: skip
    print("| N tokens | " + " | ".join(losses) + " |\n|" + " --- |" * (len(losses) + 1))
    for n, times in results.items():
        cells = [f"{times[name] * 1e3:.2f} ({times[name] / times['grpo']:.2f}x)" for name in losses]
        print(f"| {n:,} | " + " | ".join(cells) + " |")
    if args.json:
        payload = {"machine": machine.describe(), "seconds": results}
        Path(args.json).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
